"""Building the stages and the local backend from :class:`~t2f.config.Settings` (models load here, once).

Used by the CLI and ``bot.py``; the heavy libraries (torch, diffusers, TensorFlow) are imported inside
these functions, so importing this module costs nothing.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from t2f.config import Settings
from t2f.errors import ConfigError

if TYPE_CHECKING:
    from t2f.serve.backend import LocalFaceBackend
    from t2f.serve.metrics import ServiceMetrics
    from t2f.serve.moderation import PromptFilter
    from t2f.serve.policy import Policy
    from t2f.serve.ray_backend import RayFaceBackend
    from t2f.serve.service import FaceBackend, JobService
    from t2f.serve.store import Store
    from t2f.stages.gate import GateLimits, PortraitFraming
    from t2f.stages.pipeline import FacePipeline
    from t2f.stages.text2img import TextToImage


def load_text_to_image(settings: Settings) -> TextToImage:
    """The text-to-image stage, on the configured device and dtype, with the configured speed-ups.

    With ``T2F_COMPILE`` on, compiled code is cached under :meth:`Settings.compile_dir` first
    (the stage records what the cache held in ``compile_cache``, for the start-up log).
    """
    from t2f.stages.compiling import use_compile_cache
    from t2f.stages.text2img import TextToImage

    cache = use_compile_cache(settings.compile_dir()) if settings.compile != "off" else None

    stage = TextToImage.from_pretrained(
        settings.model,
        revision=settings.model_revision,
        device=settings.resolved_device(),
        dtype=settings.resolved_dtype(),
        scheduler=settings.scheduler,
        safety_checker=settings.safety_checker,
        cache_dir=settings.cache_dir,
        taesd=settings.taesd,
        channels_last=settings.speedup("channels_last"),
        fuse_qkv=settings.speedup("fuse_qkv"),
        compile_unet=settings.compile,
        max_batch=settings.max_batch,
    )
    stage.compile_cache = cache
    return stage


def load_face_pipeline(
    settings: Settings, *, text_to_image: TextToImage | None = None, crop: str = "whole"
) -> FacePipeline:
    """PRNet (weights + UV data from the PRNet folder) wrapped in a :class:`FacePipeline`.

    With ``crop="detect"`` the face detector is built here too, so its start-up is not a face's time.
    """
    from t2f.stages.compiling import buckets_for
    from t2f.stages.pipeline import FacePipeline
    from t2f.stages.prnet.model import PRNet
    from t2f.stages.prnet.uv import UVData
    from t2f.stages.text2img import TORCH_DTYPES

    folder = settings.resolved_prnet_dir()
    prnet = PRNet.from_pretrained(
        folder,
        device=settings.resolved_device(),
        dtype=TORCH_DTYPES[settings.resolved_dtype()],
        channels_last=settings.prnet_channels_last(),
        compile_network=settings.compile,
        buckets=buckets_for(settings.max_batch),
    )
    from t2f.stages.detect import FaceDetector

    # Built now for crop="detect", so its start-up is not a face's time; else when a photo first needs it.
    make_detector = functools.partial(FaceDetector, engine=settings.detector, device=settings.resolved_device())
    detector = make_detector() if crop == "detect" else None
    return FacePipeline(
        prnet=prnet,
        uv=UVData.load(folder / "uv-data"),
        detector=detector,
        text_to_image=text_to_image,
        make_detector=make_detector,
    )


def load_backend(settings: Settings) -> LocalFaceBackend | RayFaceBackend:
    """Every model the bot needs, behind the local backend (TAESD previews every 5 steps when configured).

    With ``T2F_BACKEND=ray`` the models load on the cluster's GPU workers instead, from these settings.

    Raises
    ------
    ConfigError
        When the Ray cluster at ``T2F_RAY_ADDRESS`` does not answer, or the replica bounds are reversed.
    """
    return _load_ray_backend(settings) if settings.backend == "ray" else _load_local_backend(settings)


def _load_local_backend(settings: Settings, *, overlap: bool = True) -> LocalFaceBackend:
    """The local backend; with ``overlap`` faces are found off the GPU thread where painting runs on a GPU
    (on a CPU both halves would want the same cores)."""
    from t2f.serve.backend import LocalFaceBackend

    pipeline = load_face_pipeline(settings, text_to_image=load_text_to_image(settings), crop=settings.face_crop)
    on_gpu = settings.resolved_device().startswith("cuda")  # the GPU also draws the preview and turntable
    return LocalFaceBackend(
        pipeline,
        crop=settings.face_crop,
        preview_every=5 if settings.taesd else 0,
        framing=framing(settings),
        gate=gate_limits(settings),
        overlap=overlap and on_gpu,
        export_threads=settings.resolved_export_threads(),
        render_device=settings.resolved_device() if on_gpu else None,
    )


def load_replica_backend(settings: Settings) -> LocalFaceBackend:
    """What each Ray replica runs once at start: the local backend from ``settings``, warmed up when configured."""
    backend = _load_local_backend(settings, overlap=False)  # a replica streams each face as it is done
    if settings.warmup:
        backend.warm_up(
            settings.image_size, max_batch=settings.max_batch, compiled=settings.compile != "off", steps=settings.steps
        )
    return backend


def _load_ray_backend(settings: Settings) -> RayFaceBackend:
    from t2f.serve.ray_backend import RayFaceBackend

    if settings.ray_max_replicas < settings.ray_min_replicas:
        raise ConfigError(
            f"T2F_RAY_MAX_REPLICAS={settings.ray_max_replicas} is below "
            f"T2F_RAY_MIN_REPLICAS={settings.ray_min_replicas}; raise the maximum or lower the minimum."
        )
    return RayFaceBackend.connect(
        functools.partial(load_replica_backend, settings),  # pickled to every replica, which loads the models
        address=settings.ray_address,
        min_replicas=settings.ray_min_replicas,
        max_replicas=settings.ray_max_replicas,
    )


def gate_limits(settings: Settings) -> GateLimits:
    """What a usable face is, as the settings say."""
    from t2f.stages.gate import GateLimits

    return GateLimits(
        max_yaw_deg=settings.gate_max_yaw_deg,
        max_pitch_deg=settings.gate_max_pitch_deg,
        min_face_fraction=settings.gate_min_face,
    )


def framing(settings: Settings) -> PortraitFraming:
    """The portrait template and default negative prompt the settings ask for."""
    from t2f.stages.gate import PortraitFraming

    return PortraitFraming(template=settings.prompt_template, negative=settings.negative_default)


def load_prompt_filter(settings: Settings) -> PromptFilter:
    """The prompt filter: ``T2F_BLOCKLIST_FILE`` (or the shipped list) with the shipped allow and negative lists."""
    from t2f.serve.moderation import PromptFilter

    return PromptFilter.from_file(Path(settings.blocklist_file) if settings.blocklist_file else None)


def job_service(settings: Settings, backend: FaceBackend, *, metrics: ServiceMetrics | None = None) -> JobService:
    """The job service of the bot and of ``t2f serve``: batch size, queue, timeout and export threads."""
    from t2f.serve.service import JobService

    return JobService(
        backend,
        max_batch=settings.max_batch,
        capacity=settings.queue_capacity,
        job_timeout_s=settings.job_timeout_s,
        metrics=metrics,
        export_threads=settings.resolved_export_threads(),
    )


def admission_policy(settings: Settings, *, store: Store, service: JobService) -> Policy:
    """The admission rules of the bot and of ``t2f serve``: the settings' filter and bot-wide limits."""
    from t2f.serve.policy import Limits, Policy

    limits = Limits(
        cooldown_s=settings.cooldown_s,
        daily_quota=settings.daily_quota,
        user_pending=settings.user_pending,
        queue_capacity=settings.queue_capacity,
    )
    return Policy(store=store, service=service, prompt_filter=load_prompt_filter(settings), limits=limits)
