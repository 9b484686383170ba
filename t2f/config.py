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
from t2f.stages.gate import DEFAULT_NEGATIVE, DEFAULT_TEMPLATE
from t2f.stages.prnet.upstream import CHECKPOINT_DATA_URL, UPSTREAM_DATA_URL

SCHEDULERS = ("dpmpp", "pndm", "ddim", "euler", "euler_a", "unipc")
DTYPES = ("auto", "float16", "bfloat16", "float32")
FACE_CROPS = ("detect", "whole")
# Settings whose empty value means something (off, none, the built-in list) rather than "the default".
EMPTY_ALLOWED = ("taesd", "prnet_dir", "blocklist_file", "guild_ids", "prompt_template", "negative_default")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _setting(env: str, default: Any, doc: str, *, allowed: str = "", secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc, "allowed": allowed, "secret": secret})


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
    prompt_template: str = _setting(
        "T2F_PROMPT_TEMPLATE",
        DEFAULT_TEMPLATE,
        "Portrait framing painted around a member's words (`{prompt}` is replaced by them); empty paints the "
        "words as they are. Moderation reads the member's words, not the template.",
    )
    negative_default: str = _setting(
        "T2F_NEGATIVE_DEFAULT",
        DEFAULT_NEGATIVE,
        "Negative prompt added after the member's own (side views, several people, ...); empty adds nothing.",
    )
    max_repaints: int = _setting(
        "T2F_MAX_REPAINTS",
        2,
        "How many more seeds a job may paint when an image has no usable face (no face, too small, turned "
        "away, several people, or flagged); 0 answers with the first image.",
        allowed=bounds.MAX_REPAINTS.text,
    )
    gate_max_yaw_deg: float = _setting(
        "T2F_GATE_MAX_YAW_DEG", 30.0, "Most a usable face may be turned sideways (degrees, from the detector's "
        "five points).", allowed=bounds.GATE_ANGLE_DEG.text,
    )  # fmt: skip
    gate_max_pitch_deg: float = _setting(
        "T2F_GATE_MAX_PITCH_DEG", 25.0, "Most a usable face may be tilted up or down (degrees).",
        allowed=bounds.GATE_ANGLE_DEG.text,
    )  # fmt: skip
    gate_min_face: float = _setting(
        "T2F_GATE_MIN_FACE", 0.12, "Smallest usable face, as a fraction of the image's side.",
        allowed=bounds.GATE_MIN_FACE.text,
    )  # fmt: skip
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
    # -- the web server: 3D pages, /healthz, t2f serve (t2f.web) --
    web_port: int = _setting("T2F_WEB_PORT", 0, "Port of the web server (3D face pages, `/healthz`) in the bot; "
                             "0 keeps it off. `t2f serve` uses it too (8080 when 0).",
                             allowed=f"{bounds.WEB_PORT.text}, 0 = off")  # fmt: skip
    web_host: str = _setting("T2F_WEB_HOST", "127.0.0.1", "Address the web server listens on; loopback unless a "
                             "reverse proxy on another machine must reach it (e.g. `0.0.0.0`).")  # fmt: skip
    public_url: str = _setting("T2F_PUBLIC_URL", "", "Address members reach the web server at (e.g. "
                               "`https://faces.example.org` behind a reverse proxy); empty: no \"View in 3D\" button.",
                               allowed="empty, or an http(s):// URL")  # fmt: skip
    web_secret: str = _setting("T2F_WEB_SECRET", "", "Key that signs face links; empty: generated once and kept in "
                               "`<T2F_CACHE_DIR>/web/secret`. Secret.", secret=True)  # fmt: skip
    keep_days: int = _setting("T2F_KEEP_DAYS", 7, "Days a face's page, link and files live; older ones are deleted.",
                              allowed=bounds.KEEP_DAYS.text)  # fmt: skip

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
        """JSON-friendly view for metadata files; secrets show only whether they are set."""
        return {
            f.name: ("(set)" if v else "") if f.metadata["secret"] else str(v) if isinstance(v, Path) else v
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


def _parse_template(var: str, raw: str) -> str:
    value = raw.strip()
    if value and "{prompt}" not in value:
        raise ConfigError(f"{var} must contain {{prompt}} where the member's words go, or be empty.")
    return value


def _parse_required_text(var: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ConfigError(f"{var} is empty; set it to a hub id or a local folder.")
    return value


def _parse_public_url(var: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not (value.startswith(("http://", "https://")) and len(value.split("//", 1)[1]) > 0):
        raise ConfigError(f"{var}={raw!r} is not a web address; allowed: empty, or an http(s):// URL.")
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
    "prompt_template": _parse_template,
    "negative_default": _parse_text,
    "max_repaints": lambda var, raw: _parse_number(var, raw, bounds.MAX_REPAINTS),
    "gate_max_yaw_deg": lambda var, raw: _parse_number(var, raw, bounds.GATE_ANGLE_DEG),
    "gate_max_pitch_deg": lambda var, raw: _parse_number(var, raw, bounds.GATE_ANGLE_DEG),
    "gate_min_face": lambda var, raw: _parse_number(var, raw, bounds.GATE_MIN_FACE),
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
    "web_port": lambda var, raw: _parse_number(var, raw, bounds.WEB_PORT),
    "web_host": _parse_required_text,
    "public_url": lambda var, raw: _parse_public_url(var, raw),
    "web_secret": _parse_text,
    "keep_days": lambda var, raw: _parse_number(var, raw, bounds.KEEP_DAYS),
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
        if raw is None or (raw.strip() == "" and f.name not in EMPTY_ALLOWED):
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
