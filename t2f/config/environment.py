"""Reading the environment: ``.env`` under the process's own variables, and the hub's cache folder."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

from t2f.errors import ConfigError


def read_environment(env_file: str | os.PathLike[str] | None = ".env") -> dict[str, str]:
    """Merge ``env_file`` (if it exists) under the process environment; the real environment wins."""
    merged: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        try:
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        except UnicodeDecodeError as exc:
            line = exc.object[: exc.start].count(b"\n") + 1
            bad = f"byte {exc.object[exc.start]:#04x} on line {line}"
            raise ConfigError(f"{Path(env_file).name} is not UTF-8 text ({bad}); save it as UTF-8.") from None
    merged.update(os.environ)
    return merged


def hf_home() -> Path:
    """``HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, as the hub library finds it (without importing it)."""
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface"
