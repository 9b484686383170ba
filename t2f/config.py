"""Typed settings, read once from the environment and ``.env``.

Only ``bot.py`` and ``t2f.cli`` call :func:`load_settings`; everything else receives a
:class:`Settings`. The real environment wins over ``.env`` so an operator can override a file
without editing it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from t2f import bounds
from t2f.bounds import Bound
from t2f.errors import ConfigError
from t2f.stages.prnet.upstream import CHECKPOINT_DATA_URL, UPSTREAM_DATA_URL

SCHEDULERS = ("dpmpp", "pndm", "ddim", "euler", "euler_a", "unipc")
DTYPES = ("auto", "float16", "bfloat16", "float32")
FACE_CROPS = ("detect", "whole")
BACKENDS = ("local", "ray")
RAY_REPLICAS = Bound(1, 64)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _setting(env: str, default: Any, doc: str, *, allowed: str = "") -> Any:
    return field(default=default, metadata={"env": env, "doc": doc, "allowed": allowed})


@dataclass(frozen=True)
class Settings:
    """Every t2f setting, with its environment variable, default and meaning.

    The table in the README is generated from these fields (``python -m t2f.config``).
    """

    model: str = _setting(
        "T2F_MODEL",
        "CompVis/stable-diffusion-v1-4",
        "Stable Diffusion 1.x pipeline: a Hugging Face hub id or a local folder saved with `save_pretrained`.",
    )
    model_revision: str = _setting(
        "T2F_MODEL_REVISION",
        "main",
        "Hub revision (branch, tag or commit sha) to download and load; pin a sha in production.",
    )
    device: str = _setting(
        "T2F_DEVICE",
        "auto",
        "Torch device for the models; `auto` picks CUDA when available, else CPU.",
        allowed="auto, cpu, cuda, cuda:N",
    )
    dtype: str = _setting(
        "T2F_DTYPE", "auto", "Model precision; `auto` is float16 on CUDA and float32 on CPU.", allowed=", ".join(DTYPES)
    )
    steps: int = _setting("T2F_STEPS", 25, "Default denoising steps per image.", allowed=bounds.STEPS.text)
    guidance: float = _setting(
        "T2F_GUIDANCE", 7.5, "Default classifier-free guidance scale.", allowed=bounds.GUIDANCE.text
    )
    image_size: int = _setting(
        "T2F_IMAGE_SIZE",
        512,
        "Side of the square generated image in pixels.",
        allowed=f"{bounds.IMAGE_SIZE.text}, a multiple of {bounds.IMAGE_SIZE_MULTIPLE}",
    )
    scheduler: str = _setting(
        "T2F_SCHEDULER",
        "dpmpp",
        "Sampler: `dpmpp` is DPM-Solver++ (2nd order multistep).",
        allowed=", ".join(SCHEDULERS),
    )
    channels_last: str = _setting(
        "T2F_CHANNELS_LAST",
        "auto",
        "Channels-last memory format for the UNet, VAE and PRNet; `auto` is on with CUDA.",
        allowed="auto, on, off",
    )
    fuse_qkv: str = _setting(
        "T2F_FUSE_QKV",
        "auto",
        "Fuse attention's query/key/value projections (one matmul); `auto` is on with CUDA.",
        allowed="auto, on, off",
    )
    compile: bool = _setting(
        "T2F_COMPILE",
        False,
        "torch.compile the UNet and PRNet; compiling happens in the start-up warm-up.",
        allowed="on, off",
    )
    safety_checker: bool = _setting(
        "T2F_SAFETY_CHECKER", True, "Run the pipeline's safety checker; flagged images are withheld.", allowed="on, off"
    )
    taesd: str = _setting(
        "T2F_TAESD",
        "",
        "Tiny autoencoder (hub id or folder, e.g. `madebyollin/taesd`) for step previews; empty disables previews.",
    )
    prnet_dir: str = _setting(
        "T2F_PRNET_DIR", "", "Folder with PRNet's converted weights and UV data; empty means `<T2F_CACHE_DIR>/prnet`."
    )
    prnet_checkpoint_url: str = _setting(
        "T2F_PRNET_CHECKPOINT_URL",
        CHECKPOINT_DATA_URL,
        "Where `t2f download` gets the official PRNet checkpoint data file.",
    )
    prnet_data_url: str = _setting(
        "T2F_PRNET_DATA_URL",
        UPSTREAM_DATA_URL,
        "Upstream PRNet `Data/` folder (checkpoint index and UV data) for `t2f download`.",
    )
    face_crop: str = _setting(
        "T2F_FACE_CROP",
        "detect",
        "How the face is found: MTCNN detection, or the whole image as the face crop.",
        allowed="detect, whole",
    )
    guild_ids: tuple[int, ...] = _setting(
        "T2F_GUILD_IDS",
        (),
        "Comma-separated server ids to sync commands to (instant); empty syncs globally.",
        allowed="ids, comma-separated",
    )
    db_path: Path = _setting("T2F_DB_PATH", Path("t2f.sqlite3"), "SQLite database for jobs, server settings and bans.")
    max_batch: int = _setting("T2F_MAX_BATCH", 4, "Most jobs painted together in one denoising loop.",
                              allowed=bounds.MAX_BATCH.text)  # fmt: skip
    queue_capacity: int = _setting("T2F_QUEUE_CAPACITY", 50, "Most jobs waiting at once (bot-wide).",
                                   allowed=bounds.QUEUE_CAPACITY.text)  # fmt: skip
    user_pending: int = _setting(
        "T2F_USER_PENDING", 2, "Most jobs one member can have waiting or running.", allowed=bounds.USER_PENDING.text
    )
    cooldown_s: float = _setting(
        "T2F_COOLDOWN_S", 20.0, "Seconds a member waits between two /face.", allowed=bounds.COOLDOWN_S.text
    )
    daily_quota: int = _setting("T2F_DAILY_QUOTA", 30, "Faces per member per server per UTC day.",
                                allowed=bounds.DAILY_QUOTA.text)  # fmt: skip
    job_timeout_s: float = _setting("T2F_JOB_TIMEOUT_S", 600.0, "A job running longer is stopped.",
                                  allowed=bounds.JOB_TIMEOUT_S.text)  # fmt: skip
    progress_interval_s: float = _setting(
        "T2F_PROGRESS_INTERVAL_S",
        2.5,
        "Least seconds between two progress edits of a message.",
        allowed=bounds.PROGRESS_INTERVAL_S.text,
    )
    blocklist_file: str = _setting(
        "T2F_BLOCKLIST_FILE", "", "Prompt filter file (words, or `re:` regexes); empty uses the built-in list."
    )
    warmup: bool = _setting("T2F_WARMUP", True, "Run one short generation at start-up, before commands are accepted.",
                            allowed="on, off")  # fmt: skip
    cache_dir: Path = _setting("T2F_CACHE_DIR", Path("models"), "Where downloaded weights are cached.")
    output_dir: Path = _setting("T2F_OUTPUT_DIR", Path("outputs"), "Where generated images, meshes and metadata go.")
    # -- scale-out: the Ray Serve backend (README, "Scaling out with Ray") --
    backend: str = _setting(
        "T2F_BACKEND",
        "local",
        "Where faces are made: this machine's GPU, or a Ray Serve cluster of GPU workers (`pip install .[ray]`).",
        allowed=", ".join(BACKENDS),
    )
    ray_address: str = _setting(
        "T2F_RAY_ADDRESS",
        "",
        "Ray cluster the bot joins: `auto` (this machine ran `ray start`) or the head's `host:6379`; empty starts "
        "a local cluster on this machine.",
    )
    ray_min_replicas: int = _setting(
        "T2F_RAY_MIN_REPLICAS", 1, "Fewest GPU workers (one GPU each) kept running.", allowed=RAY_REPLICAS.text
    )
    ray_max_replicas: int = _setting(
        "T2F_RAY_MAX_REPLICAS",
        1,
        "Most GPU workers; above the minimum, Ray Serve adds them while batches wait.",
        allowed=RAY_REPLICAS.text,
    )

    def resolved_device(self) -> str:
        """The concrete torch device string (``auto`` resolved)."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_dtype(self) -> str:
        """The concrete dtype name: float16 on CUDA and float32 on CPU unless set explicitly."""
        if self.dtype != "auto":
            return self.dtype
        return "float16" if self.resolved_device().startswith("cuda") else "float32"

    def speedup(self, name: str) -> bool:
        """Whether an ``auto/on/off`` speed-up setting is on; ``auto`` means "on with CUDA"."""
        value = getattr(self, name)
        return self.resolved_device().startswith("cuda") if value == "auto" else value == "on"

    def resolved_prnet_dir(self) -> Path:
        """PRNet's folder: ``T2F_PRNET_DIR`` or ``<cache_dir>/prnet``."""
        return Path(self.prnet_dir).expanduser() if self.prnet_dir else self.cache_dir / "prnet"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view for metadata files."""
        return {
            f.name: str(v) if isinstance(v, Path) else v
            for f, v in zip(dataclasses.fields(self), dataclasses.astuple(self), strict=True)
        }


def _parse_number(var: str, raw: str, bound: Bound[Any]) -> Any:
    kind = type(bound.low)
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not {what}; allowed: {bound.text}.") from None
    if value not in bound:
        raise ConfigError(f"{var}={value:g} is out of range; allowed: {bound.text}.")
    return value


def _parse_choice(var: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{var}={raw!r} is not allowed; allowed: {', '.join(choices)}.")
    return value


def _parse_bool(var: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{var}={raw!r} is not a switch; allowed: on, off (or true/false, 1/0, yes/no).")


def _parse_device(var: str, raw: str) -> str:
    value = raw.strip().lower()
    if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise ConfigError(f"{var}={raw!r} is not a device; allowed: auto, cpu, cuda, cuda:N.")


def _parse_image_size(var: str, raw: str) -> int:
    value = int(_parse_number(var, raw, bounds.IMAGE_SIZE))
    if value % bounds.IMAGE_SIZE_MULTIPLE:
        raise ConfigError(
            f"{var}={value} is not a multiple of {bounds.IMAGE_SIZE_MULTIPLE}; "
            f"allowed: {bounds.IMAGE_SIZE.text}, a multiple of {bounds.IMAGE_SIZE_MULTIPLE}."
        )
    return value


def _parse_ids(var: str, raw: str) -> tuple[int, ...]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise ConfigError(f"{var}={raw!r} is not a list of ids; allowed: ids, comma-separated.")
    return tuple(int(p) for p in parts)


def _parse_text(var: str, raw: str) -> str:
    return raw.strip()


def _parse_required_text(var: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ConfigError(f"{var} is empty; set it to a hub id or a local folder.")
    return value


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "model": _parse_required_text,
    "model_revision": _parse_required_text,
    "device": _parse_device,
    "dtype": lambda var, raw: _parse_choice(var, raw, DTYPES),
    "steps": lambda var, raw: _parse_number(var, raw, bounds.STEPS),
    "guidance": lambda var, raw: _parse_number(var, raw, bounds.GUIDANCE),
    "image_size": _parse_image_size,
    "scheduler": lambda var, raw: _parse_choice(var, raw, SCHEDULERS),
    "safety_checker": _parse_bool,
    "channels_last": lambda var, raw: _parse_choice(var, raw, ("auto", "on", "off")),
    "fuse_qkv": lambda var, raw: _parse_choice(var, raw, ("auto", "on", "off")),
    "compile": _parse_bool,
    "taesd": _parse_text,
    "prnet_dir": _parse_text,
    "prnet_checkpoint_url": _parse_required_text,
    "prnet_data_url": _parse_required_text,
    "face_crop": lambda var, raw: _parse_choice(var, raw, FACE_CROPS),
    "guild_ids": _parse_ids,
    "db_path": lambda var, raw: Path(raw.strip()).expanduser(),
    "max_batch": lambda var, raw: _parse_number(var, raw, bounds.MAX_BATCH),
    "queue_capacity": lambda var, raw: _parse_number(var, raw, bounds.QUEUE_CAPACITY),
    "user_pending": lambda var, raw: _parse_number(var, raw, bounds.USER_PENDING),
    "cooldown_s": lambda var, raw: _parse_number(var, raw, bounds.COOLDOWN_S),
    "daily_quota": lambda var, raw: _parse_number(var, raw, bounds.DAILY_QUOTA),
    "job_timeout_s": lambda var, raw: _parse_number(var, raw, bounds.JOB_TIMEOUT_S),
    "progress_interval_s": lambda var, raw: _parse_number(var, raw, bounds.PROGRESS_INTERVAL_S),
    "blocklist_file": _parse_text,
    "warmup": _parse_bool,
    "cache_dir": lambda var, raw: Path(raw.strip()).expanduser(),
    "output_dir": lambda var, raw: Path(raw.strip()).expanduser(),
    "backend": lambda var, raw: _parse_choice(var, raw, BACKENDS),
    "ray_address": _parse_text,
    "ray_min_replicas": lambda var, raw: _parse_number(var, raw, RAY_REPLICAS),
    "ray_max_replicas": lambda var, raw: _parse_number(var, raw, RAY_REPLICAS),
}


def settings_from_mapping(values: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from variables; unset or empty-string variables keep their defaults.

    Raises
    ------
    ConfigError
        When a value is invalid; the message names the variable and the allowed values.
    """
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        var = f.metadata["env"]
        raw = values.get(var)
        if raw is None or (raw.strip() == "" and f.name not in ("taesd", "prnet_dir", "blocklist_file", "guild_ids")):
            continue
        kwargs[f.name] = _PARSERS[f.name](var, raw)
    return Settings(**kwargs)


def read_environment(env_file: str | os.PathLike[str] | None = ".env") -> dict[str, str]:
    """Merge ``env_file`` (if it exists) under the process environment; the real environment wins."""
    merged: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


def load_settings(env_file: str | os.PathLike[str] | None = ".env") -> Settings:
    """Read :class:`Settings` from ``env_file`` and the environment."""
    return settings_from_mapping(read_environment(env_file))


def _default_text(default: object) -> str:
    """A default as it is written in ``.env``: on/off, comma-separated ids, or the plain value."""
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    return str(default)


def settings_table() -> str:
    """Markdown table of every setting, for the README."""
    rows = ["| variable | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(Settings):
        shown = _default_text(f.default) or "(empty)"
        rows.append(f"| `{f.metadata['env']}` | `{shown}` | {f.metadata['allowed'] or 'any'} | {f.metadata['doc']} |")
    return "\n".join(rows)


def env_example() -> str:
    """The text of ``.env.example``: every variable with its default and meaning, the token blank."""
    lines = [
        "# t2f settings. Copy to .env (git-ignored) and fill in. The real environment overrides this file.",
        "",
        "# Discord bot token from the Developer Portal (Bot tab). Secret: never commit it.",
        "DISCORD_TOKEN=",
        "",
        '# Models, inference, the bot\'s limits and storage (see README, "Configuration").',
    ]
    for f in dataclasses.fields(Settings):
        shown = _default_text(f.default)
        allowed = f" Allowed: {f.metadata['allowed']}." if f.metadata["allowed"] else ""
        lines += [f"# {f.metadata['doc']}{allowed}", f"{f.metadata['env']}={shown}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    print(
        env_example() if "--env-example" in sys.argv else settings_table(),
        end="" if "--env-example" in sys.argv else "\n",
    )
