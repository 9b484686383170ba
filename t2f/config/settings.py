"""Typed settings: every ``T2F_`` variable, its default, what it allows and what it means.

Only ``bot.py`` and ``t2f.cli`` call :func:`load_settings`; everything else receives a
:class:`Settings`. The real environment wins over ``.env`` so an operator can override a file
without editing it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2f import bounds
from t2f.config.environment import hf_home, read_environment
from t2f.config.speed import SpeedSettings
from t2f.config.values import (
    BACKENDS,
    CHANNELS_LAST,
    DETECTORS,
    DTYPES,
    KARRAS_SCHEDULERS,
    LOG_FORMATS,
    LOG_LEVELS,
    PARSERS,
    SCHEDULERS,
    setting,
)
from t2f.config.web import WebSettings
from t2f.errors import ConfigError
from t2f.stages.gate import DEFAULT_NEGATIVE, DEFAULT_TEMPLATE
from t2f.stages.prnet.upstream import CHECKPOINT_DATA_URL, UPSTREAM_DATA_URL

# Settings whose empty value means something (off, none, the built-in list) rather than "the default".
EMPTY_ALLOWED = ("taesd", "prnet_dir", "blocklist_file", "guild_ids", "prompt_template", "negative_default")


@dataclass(frozen=True)
class Settings(SpeedSettings, WebSettings):
    """Every t2f setting, with its environment variable, default and meaning.

    The fast profile's are declared in :class:`~t2f.config.speed.SpeedSettings`, the web server's in
    :class:`~t2f.config.web.WebSettings`. The table in the README is generated from these fields
    (``python -m t2f.config``).
    """

    model: str = setting(
        "T2F_MODEL",
        "CompVis/stable-diffusion-v1-4",
        "Stable Diffusion 1.x pipeline: a Hugging Face hub id or a local folder saved with `save_pretrained`.",
    )
    model_revision: str = setting(
        "T2F_MODEL_REVISION",
        "main",
        "Hub revision (branch, tag or commit sha) to download and load; pin a sha in production.",
    )
    device: str = setting(
        "T2F_DEVICE",
        "auto",
        "Torch device for the models; `auto` picks CUDA when available, else CPU.",
        allowed="auto, cpu, cuda, cuda:N",
    )
    dtype: str = setting(
        "T2F_DTYPE", "auto", "Model precision; `auto` is float16 on CUDA and float32 on CPU.", allowed=", ".join(DTYPES)
    )
    steps: int = setting("T2F_STEPS", 25, "Default denoising steps per image.", allowed=bounds.MEMBER_STEPS.text)
    guidance: float = setting(
        "T2F_GUIDANCE", 7.5, "Default classifier-free guidance scale.", allowed=bounds.MEMBER_GUIDANCE.text
    )
    image_size: int = setting(
        "T2F_IMAGE_SIZE",
        512,
        "Side of the square generated image in pixels.",
        allowed=f"{bounds.IMAGE_SIZE.text}, a multiple of {bounds.IMAGE_SIZE_MULTIPLE}",
    )
    scheduler: str = setting(
        "T2F_SCHEDULER",
        "dpmpp",
        "Sampler: `dpmpp` is DPM-Solver++ (2nd order multistep).",
        allowed=", ".join(SCHEDULERS),
    )
    channels_last: str = setting(
        "T2F_CHANNELS_LAST",
        "auto",
        "Channels-last memory format for the UNet, VAE and PRNet; `auto`: PRNet alone, on CUDA (the UNet was slower "
        "with it at batch 1 on an H200, eager); `compiled`: as `auto`, and the UNet and VAE too where T2F_COMPILE "
        "is on (unmeasured on a GPU).",
        allowed=", ".join(CHANNELS_LAST),
    )
    fuse_qkv: str = setting(
        "T2F_FUSE_QKV",
        "auto",
        "Fuse attention's query/key/value projections (one matmul); `auto` is off (slower at batch 1 on an H200).",
        allowed="auto, on, off",
    )
    compile_mode: str = setting(
        "T2F_COMPILE",
        "off",
        "torch.compile the UNet and PRNet in the start-up warm-up, per batch bucket; `graphs` also replays "
        "them from CUDA graphs (CUDA only); `graphs-single` adds a static graph for one face alone (faster "
        "alone, one more graph to load at each start). Compiled code is cached under `<cache>/compile`.",
        allowed="off, default, graphs, graphs-single (on = default)",
    )
    safety_checker: bool = setting(
        "T2F_SAFETY_CHECKER", True, "Run the pipeline's safety checker; flagged images are withheld.", allowed="on, off"
    )
    taesd: str = setting(
        "T2F_TAESD",
        "",
        "Tiny autoencoder (hub id or folder, e.g. `madebyollin/taesd`) for step previews; empty disables previews.",
    )
    prnet_dir: str = setting(
        "T2F_PRNET_DIR",
        "",
        "Folder with PRNet's converted weights and UV data; empty is `<T2F_CACHE_DIR>/prnet`, "
        "or `<HF_HOME>/t2f/prnet` without a T2F_CACHE_DIR.",
    )
    prnet_checkpoint_url: str = setting(
        "T2F_PRNET_CHECKPOINT_URL",
        CHECKPOINT_DATA_URL,
        "Where `t2f download` gets the official PRNet checkpoint data file.",
    )
    prnet_data_url: str = setting(
        "T2F_PRNET_DATA_URL",
        UPSTREAM_DATA_URL,
        "Upstream PRNet `Data/` folder (checkpoint index and UV data) for `t2f download`.",
    )
    face_crop: str = setting(
        "T2F_FACE_CROP",
        "detect",
        "How the face is found: MTCNN detection, or the whole image as the face crop.",
        allowed="detect, whole",
    )
    detector: str = setting(
        "T2F_DETECTOR",
        "torch",
        "MTCNN's engine, same weights (the mtcnn wheel's): PyTorch on T2F_DEVICE, or TensorFlow on the CPU.",
        allowed=", ".join(DETECTORS),
    )
    prompt_template: str = setting(
        "T2F_PROMPT_TEMPLATE",
        DEFAULT_TEMPLATE,
        "Portrait framing painted around a member's words (`{prompt}` is replaced by them); empty paints the "
        "words as they are. Moderation reads the member's words, not the template.",
    )
    negative_default: str = setting(
        "T2F_NEGATIVE_DEFAULT",
        DEFAULT_NEGATIVE,
        "Negative prompt added after the member's own (side views, several people, ...); empty adds nothing.",
    )
    max_repaints: int = setting(
        "T2F_MAX_REPAINTS",
        2,
        "How many more seeds a job may paint when an image has no usable face (no face, too small, turned "
        "away, several people, or flagged); 0 answers with the first image.",
        allowed=bounds.MAX_REPAINTS.text,
    )
    gate_max_yaw_deg: float = setting(
        "T2F_GATE_MAX_YAW_DEG",
        30.0,
        "Most a usable face may be turned sideways (degrees, from the detector's five points).",
        allowed=bounds.GATE_ANGLE_DEG.text,
    )
    gate_max_pitch_deg: float = setting(
        "T2F_GATE_MAX_PITCH_DEG",
        25.0,
        "Most a usable face may be tilted up or down (degrees).",
        allowed=bounds.GATE_ANGLE_DEG.text,
    )
    gate_min_face: float = setting(
        "T2F_GATE_MIN_FACE",
        0.12,
        "Smallest usable face, as a fraction of the image's side.",
        allowed=bounds.GATE_MIN_FACE.text,
    )
    guild_ids: tuple[int, ...] = setting(
        "T2F_GUILD_IDS",
        (),
        "Comma-separated server ids to sync commands to (instant); empty syncs globally.",
        allowed="ids, comma-separated",
    )
    db_path: Path = setting("T2F_DB_PATH", Path("t2f.sqlite3"), "SQLite database for jobs, server settings and bans.")
    max_batch: int = setting(
        "T2F_MAX_BATCH", 8, "Most jobs painted together in one denoising loop.", allowed=bounds.MAX_BATCH.text
    )
    export_threads: int = setting(
        "T2F_EXPORT_THREADS",
        0,
        "Threads writing finished faces' files, and as many more sharing out each "
        "face's parts; 0: one painting on a CPU, else half the CPU cores up to 4.",
        allowed=bounds.EXPORT_THREADS.text,
    )
    queue_capacity: int = setting(
        "T2F_QUEUE_CAPACITY", 50, "Most jobs waiting at once (bot-wide).", allowed=bounds.QUEUE_CAPACITY.text
    )
    user_pending: int = setting(
        "T2F_USER_PENDING", 2, "Most jobs one member can have waiting or running.", allowed=bounds.USER_PENDING.text
    )
    cooldown_s: float = setting(
        "T2F_COOLDOWN_S", 20.0, "Seconds a member waits between two /face.", allowed=bounds.COOLDOWN_S.text
    )
    daily_quota: int = setting(
        "T2F_DAILY_QUOTA", 30, "Faces per member per server per UTC day.", allowed=bounds.DAILY_QUOTA.text
    )
    job_timeout_s: float = setting(
        "T2F_JOB_TIMEOUT_S", 600.0, "A job running longer is stopped.", allowed=bounds.JOB_TIMEOUT_S.text
    )
    progress_interval_s: float = setting(
        "T2F_PROGRESS_INTERVAL_S",
        2.5,
        "Least seconds between two progress edits of a message.",
        allowed=bounds.PROGRESS_INTERVAL_S.text,
    )
    blocklist_file: str = setting(
        "T2F_BLOCKLIST_FILE",
        "",
        "Your own words for the prompt filter (words, or `re:` regexes), added to the shipped lexicons; empty: none.",
    )
    warmup: bool = setting(
        "T2F_WARMUP", True, "Run one short generation at start-up, before commands are accepted.", allowed="on, off"
    )
    cache_dir: Path | None = setting(
        "T2F_CACHE_DIR", None, "Hugging Face cache for the models; empty is the hub's standard one (`HF_HOME`)."
    )
    output_dir: Path = setting("T2F_OUTPUT_DIR", Path("outputs"), "Where generated images, meshes and metadata go.")
    # -- members' photos: /face3d and "Make a 3D face" (README "Photos of real people") --
    photo_input: bool = setting(
        "T2F_PHOTO_INPUT",
        True,
        "Let members make a 3D face from a photo, a message's "
        "image or an avatar (`/face3d`); moderators can switch it per server.",
        allowed="on, off",
    )
    keep_uploads: bool = setting(
        "T2F_KEEP_UPLOADS",
        False,
        "Keep each member's original photo in "
        "`<T2F_OUTPUT_DIR>/uploads` after its job; off: it lives in memory for the job only.",
        allowed="on, off",
    )
    # -- members' data: how long it is kept and where the privacy notice is (PRIVACY.md) --
    retention_days: int = setting(
        "T2F_RETENTION_DAYS",
        7,
        "Days a job's record (member, server, channel, prompt, outcome) and a kept photo are kept; older ones are "
        "deleted every hour.",
        allowed=bounds.RETENTION_DAYS.text,
    )
    privacy_url: str = setting(
        "T2F_PRIVACY_URL",
        "",
        "Address of this bot's privacy notice (publish PRIVACY.md, edited for your bot), linked from `/help`; "
        "empty: `/help` says there is none and points members to `/forget`.",
        allowed="empty, or an http(s):// URL",
    )
    log_level: str = setting(
        "T2F_LOG_LEVEL",
        "",
        "Least level logged; empty is `info` for the bot and `warning` for `t2f`.",
        allowed=", ".join(LOG_LEVELS),
    )
    log_format: str = setting(
        "T2F_LOG_FORMAT",
        "text",
        "Log lines as plain text, or one JSON object per line for a log collector.",
        allowed=", ".join(LOG_FORMATS),
    )
    # -- scale-out: the Ray Serve backend (README, "Scaling out with Ray") --
    backend: str = setting(
        "T2F_BACKEND",
        "local",
        "Where faces are made: this machine's GPU, or a Ray Serve cluster of GPU workers (`pip install .[ray]`).",
        allowed=", ".join(BACKENDS),
    )
    ray_address: str = setting(
        "T2F_RAY_ADDRESS",
        "",
        "Ray cluster the bot joins: `auto` (this machine ran `ray start`) or the head's `host:6379`; empty starts "
        "a local cluster on this machine.",
    )
    ray_min_replicas: int = setting(
        "T2F_RAY_MIN_REPLICAS", 1, "Fewest GPU workers (one GPU each) kept running.", allowed=bounds.RAY_REPLICAS.text
    )
    ray_max_replicas: int = setting(
        "T2F_RAY_MAX_REPLICAS",
        1,
        "Most GPU workers; above the minimum, Ray Serve adds them while batches wait.",
        allowed=bounds.RAY_REPLICAS.text,
    )

    def resolved_device(self) -> str:
        """The concrete torch device string (``auto`` resolved)."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_export_threads(self) -> int:
        """``T2F_EXPORT_THREADS``, or :func:`~t2f.bounds.default_export_threads` for the device when it is 0."""
        return self.export_threads or bounds.default_export_threads(on_gpu=self.resolved_device().startswith("cuda"))

    def resolved_dtype(self) -> str:
        """The concrete dtype name: float16 on CUDA and float32 on CPU unless set explicitly."""
        if self.dtype != "auto":
            return self.dtype
        return "float16" if self.resolved_device().startswith("cuda") else "float32"

    def speedup(self, name: str) -> bool:
        """Whether an ``auto/on/off`` speed-up is on for Stable Diffusion; ``auto`` is off (channels-last and
        fused QKV were slower than plain fp16 at batch 1 on an H200, eager: ../shared/docs/gpu-measurements.md).
        Channels-last ``compiled`` is on where ``T2F_COMPILE`` is (under compile it is untried)."""
        value = getattr(self, name)
        return bool(value == "on" or (value == "compiled" and self.compile_mode != "off"))

    def prnet_channels_last(self) -> bool:
        """``T2F_CHANNELS_LAST`` for PRNet: ``auto`` (and ``compiled``) is on where it runs on CUDA (cuDNN's fp16
        convolutions want NHWC; bench/results/gpu-nvidia-h200.md times PRNet both ways), off on a CPU."""
        if self.channels_last in ("auto", "compiled"):
            return self.resolved_device().startswith("cuda")
        return self.speedup("channels_last")

    def check_fast_profile(self) -> None:
        """Raise :class:`ConfigError` when the fast profile asks for what the sampler cannot do."""
        if self.karras_sigmas and self.scheduler not in KARRAS_SCHEDULERS:
            raise ConfigError(
                f"T2F_KARRAS_SIGMAS=on needs a sampler with Karras sigmas, not T2F_SCHEDULER={self.scheduler}; "
                f"use {', '.join(KARRAS_SCHEDULERS)}, or switch T2F_KARRAS_SIGMAS off."
            )

    def compile_dir(self) -> Path:
        """Where torch.compile keeps compiled code between starts: ``<data_dir>/compile`` (the Docker volume)."""
        return self.data_dir() / "compile"

    def resolved_prnet_dir(self) -> Path:
        """PRNet's folder: ``T2F_PRNET_DIR``, else ``<cache_dir>/prnet``, else ``<HF_HOME>/t2f/prnet``.

        Beside the hub's own cache (``<HF_HOME>/hub``), so clearing one cache folder clears both.
        """
        if self.prnet_dir:
            return Path(self.prnet_dir).expanduser()
        return self.data_dir() / "prnet"

    def data_dir(self) -> Path:
        """t2f's own downloads (PRNet, the 3D viewer, the link secret): ``T2F_CACHE_DIR``, else ``<HF_HOME>/t2f``."""
        return self.cache_dir or hf_home() / "t2f"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view for metadata files; secrets show only whether they are set."""
        return {
            f.name: ("(set)" if v else "") if f.metadata["secret"] else str(v) if isinstance(v, Path) else v
            for f, v in zip(dataclasses.fields(self), dataclasses.astuple(self), strict=True)
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
        kwargs[f.name] = PARSERS[f.name](var, raw)
    settings = Settings(**kwargs)
    settings.check_web()
    settings.check_fast_profile()
    return settings


def setting_names() -> frozenset[str]:
    """Every setting's variable name (``T2F_MODEL``, …)."""
    return frozenset(f.metadata["env"] for f in dataclasses.fields(Settings))


def load_settings(env_file: str | os.PathLike[str] | None = ".env") -> Settings:
    """Read :class:`Settings` from ``env_file`` and the environment."""
    return settings_from_mapping(read_environment(env_file))
