"""Checks of the settings that need no model: files readable, database writable, device present.

``bot.py --check-config``, the bot's start and ``t2f doctor``/``generate`` run them before anything
loads, so a wrong path, a missing GPU or a missing 3D viewer is one line in seconds instead of a traceback
or an exit after the models loaded. Each check raises :class:`ConfigError` naming the variable and what to do.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from t2f.config import Settings
from t2f.errors import ConfigError, T2FError
from t2f.files.checks import writable_folder

MIN_DRIVER = 580  # torch 2.13.0's PyPI build carries the CUDA 13.0 runtime; CUDA 13.x needs driver R580 or newer


def check_blocklist(file: str) -> None:
    """``T2F_BLOCKLIST_FILE`` (when set) is a readable UTF-8 file whose ``re:`` lines compile."""
    if not file:
        return
    from t2f.serve.moderation import PromptFilter

    path = Path(file).expanduser()
    if not path.exists():
        raise ConfigError(f"T2F_BLOCKLIST_FILE={file} does not exist; point it at your word list or leave it empty.")
    if not path.is_file():
        raise ConfigError(f"T2F_BLOCKLIST_FILE={file} is not a file; point it at your word list or leave it empty.")
    try:
        PromptFilter.from_file(path)
    except UnicodeDecodeError:
        raise ConfigError(f"T2F_BLOCKLIST_FILE={file} is not UTF-8 text; save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"T2F_BLOCKLIST_FILE={file} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    except (re.error, T2FError, ValueError) as exc:
        reason = exc.user_message if isinstance(exc, T2FError) else str(exc)
        raise ConfigError(f"T2F_BLOCKLIST_FILE={file} has a line t2f cannot use: {reason}.") from None


def check_db_path(path: Path) -> None:
    """``T2F_DB_PATH`` is a file (or can become one) in a folder t2f may write (SQLite adds -wal/-shm beside it)."""
    if path.is_dir():
        raise ConfigError(f"T2F_DB_PATH={path} is a folder; point it at a file, e.g. {path / 't2f.sqlite3'}.")
    # The store creates missing folders, so the nearest folder that exists is the one that must be writable.
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"T2F_DB_PATH={path} is inside {folder}, which is a file, not a folder.")
    if not writable_folder(folder) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        raise ConfigError(f"T2F_DB_PATH={path} is not writable here; point it at a folder this user may write.")


def check_output_dir(path: Path) -> None:
    """``T2F_OUTPUT_DIR`` is a folder (or can become one); existing folders must be writable."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"T2F_OUTPUT_DIR={path} is a file; point it at a folder.")
    if path.is_dir() and not writable_folder(path):
        raise ConfigError(f"T2F_OUTPUT_DIR={path} is not writable; point it at a folder this user may write.")


def check_device(device: str) -> None:
    """A configured CUDA device exists. Imports torch (a second or two), so only when CUDA is asked for.

    ``auto`` and ``cpu`` always work: ``auto`` falls back to the CPU.
    """
    if not device.startswith("cuda"):
        return
    import torch

    if torch.version.cuda is None:
        raise ConfigError(
            f"T2F_DEVICE={device}, but this PyTorch ({torch.__version__}) is a CPU-only build; install the CUDA "
            "build (pip install torch==2.13.0 on Linux x86-64) or set T2F_DEVICE=auto."
        )
    with warnings.catch_warnings(record=True) as caught:  # an old driver is reported as a warning, not an error
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
    if not available:
        why = str(caught[0].message).strip().splitlines()[0] if caught else "no GPU visible"
        raise ConfigError(
            f"T2F_DEVICE={device}, but PyTorch cannot use CUDA ({why[:200]}); it needs an NVIDIA GPU and driver "
            f"{MIN_DRIVER} or newer (in Docker: --gpus all). Or set T2F_DEVICE=auto or cpu."
        )
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        raise ConfigError(f"T2F_DEVICE={device}, but PyTorch sees {count} GPU(s): cuda:0 to cuda:{count - 1}.")


def check_viewer(settings: Settings) -> None:
    """With the web server on (``T2F_WEB_PORT``), the 3D viewer is downloaded: the server cannot start without it.

    Checked here, so a missing viewer is one line in seconds, not an exit after every model has loaded.
    """
    if not settings.web_port:
        return
    from t2f.web.assets import PACKAGE, VERSION, script_path

    if not script_path(settings.data_dir()).is_file():
        raise ConfigError(
            f"T2F_WEB_PORT={settings.web_port} serves 3D pages, but the 3D viewer ({PACKAGE} {VERSION}) is not "
            f"downloaded in {settings.data_dir()}; fetch it with: t2f web-assets (t2f download fetches it too)."
        )


def check_settings(settings: Settings, *, device: bool = True) -> None:
    """Every check above, cheapest first; the first problem raises :class:`ConfigError`."""
    check_blocklist(settings.blocklist_file)
    check_db_path(settings.db_path)
    check_output_dir(settings.output_dir)
    check_viewer(settings)
    if device:
        check_device(settings.device)
