"""Building the route's stages from :class:`~t2f.config.Settings` (models load here, once).

Used by the CLI, :mod:`t2f.stack` (the bot and ``t2f serve``) and each Ray replica; the heavy libraries
(torch, diffusers, TensorFlow) are imported inside these functions, so importing this module costs nothing.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from t2f.config import Settings
from t2f.errors import ConfigError
from t2f.serve.requests import RequestDefaults

if TYPE_CHECKING:
    from collections.abc import Callable

    from t2f.serve.metrics import ServiceMetrics
    from t2f.serve.moderation import PromptFilter
    from t2f.serve.policy import Policy
    from t2f.serve.route import Route
    from t2f.serve.service import JobService
    from t2f.serve.store import Store
    from t2f.serve.warmup import LocalStages
    from t2f.stages.gate import GateLimits, PortraitFraming
    from t2f.stages.pipeline import FacePipeline
    from t2f.stages.text2img import TextToImage


def load_text_to_image(settings: Settings) -> TextToImage:
    """The text-to-image stage, on the configured device and dtype, with the configured speed-ups.

    With ``T2F_COMPILE`` on, compiled code is cached under :meth:`Settings.compile_dir` first
    (the stage records what the cache held in ``compile_cache``, for the start-up log).
    """
    from t2f.stages.compiling import use_compile_cache
    from t2f.stages.profiles import FastProfile
    from t2f.stages.text2img import TextToImage

    cache = use_compile_cache(settings.compile_dir()) if settings.compile_mode != "off" else None

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
        compile_mode=settings.compile_mode,
        max_batch=settings.max_batch,
        fast=FastProfile(
            karras_sigmas=settings.karras_sigmas,
            deepcache_interval=settings.deepcache_interval,
            deepcache_branch=settings.deepcache_branch,
        ),
        compile_vae=settings.compile_vae,
    )
    stage.compile_cache = cache
    return stage


def load_face_pipeline(
    settings: Settings, *, text_to_image: TextToImage | None = None, crop: str = "whole"
) -> FacePipeline:
    """PRNet (weights + UV data from the PRNet folder) wrapped in a :class:`FacePipeline`.

    With ``crop="detect"`` the face detector is built here too, so its start-up is not a face's time.
    """
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
        compile_mode=settings.compile_mode,
        buckets=(1,),  # the faces stage rebuilds one face at a time, as each is found
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


def load_stages(settings: Settings) -> LocalStages:
    """The painter, the faces stage and the files stage on this machine, every model loaded."""
    from t2f.serve.warmup import LocalStages

    pipeline = load_face_pipeline(settings, text_to_image=load_text_to_image(settings), crop=settings.face_crop)
    on_gpu = settings.resolved_device().startswith("cuda")  # the GPU also draws the preview and turntable
    return LocalStages.around(
        pipeline,
        crop=settings.face_crop,
        gate=gate_limits(settings),
        framing=framing(settings),
        parts_threads=settings.resolved_export_threads(),
        render_device=settings.resolved_device() if on_gpu else None,
    )


def local_route(settings: Settings, stages: LocalStages) -> Route:
    """The route on this machine: faces found on a thread of their own where painting runs on a GPU (on a
    CPU both would want the same cores, so they queue behind the painting)."""
    return stages.route(
        faces_thread=settings.resolved_device().startswith("cuda"), files_threads=settings.resolved_export_threads()
    )


def load_route(settings: Settings) -> tuple[Route, LocalStages | None]:
    """The route the settings ask for, and its local stages (``None`` with ``T2F_BACKEND=ray``, where the
    painting and the faces are the cluster's and only the files are written here).

    Raises
    ------
    ConfigError
        When the Ray cluster at ``T2F_RAY_ADDRESS`` does not answer, or the replica bounds are reversed.
    """
    if settings.backend == "ray":
        return ray_route(settings), None
    stages = load_stages(settings)
    return local_route(settings, stages), stages


def ray_route(settings: Settings) -> Route:
    """Paint and faces on the Ray cluster's GPU workers, the files on this machine's CPUs (which paint
    nothing, so they get the threads a GPU machine would)."""
    from t2f import bounds
    from t2f.serve.files import FileWriter
    from t2f.serve.ray_backend import RayFaceBackend
    from t2f.serve.route import Route

    if settings.ray_max_replicas < settings.ray_min_replicas:
        raise ConfigError(
            f"T2F_RAY_MAX_REPLICAS={settings.ray_max_replicas} is below "
            f"T2F_RAY_MIN_REPLICAS={settings.ray_min_replicas}; raise the maximum or lower the minimum."
        )
    painter = RayFaceBackend.connect(
        functools.partial(load_replica_stages, settings),  # pickled to every replica, which loads the models
        address=settings.ray_address,
        min_replicas=settings.ray_min_replicas,
        max_replicas=settings.ray_max_replicas,
        preview_interval_s=settings.progress_interval_s,
    )
    threads = settings.export_threads or bounds.default_export_threads(on_gpu=True)
    return Route(paint=painter, faces=None, files=FileWriter(parts_threads=threads), files_threads=threads)


def load_replica_stages(settings: Settings) -> LocalStages:
    """What each Ray replica runs once at start: the local stages from ``settings``, warmed up when configured."""
    stages = load_stages(settings)
    if settings.warmup:
        warm_up_call(settings, stages)()
    return stages


def warm_up_call(settings: Settings, stages: LocalStages) -> Callable[[], dict[int, float]]:
    """The start-up warm-up of ``stages`` as the settings ask (image size, batch buckets, compile mode and the
    members' step count), for :meth:`~t2f.serve.service.JobService.warm_up` to run on the GPU thread."""
    from t2f.serve.warmup import warm_up

    return functools.partial(
        warm_up,
        stages,
        settings.image_size,
        max_batch=settings.max_batch,
        compile_mode=settings.compile_mode,
        steps=settings.steps,
    )


def request_defaults(settings: Settings) -> RequestDefaults:
    """What a request gets for what it leaves out: ``T2F_STEPS``, ``T2F_GUIDANCE``, ``T2F_IMAGE_SIZE``,
    ``T2F_MAX_REPAINTS``, ``T2F_PROFILE`` and ``T2F_FAST_STEPS``."""
    return RequestDefaults(
        steps=settings.steps,
        guidance=settings.guidance,
        size=settings.image_size,
        max_repaints=settings.max_repaints,
        profile=settings.profile,
        fast_steps=settings.fast_steps,
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


def job_service(settings: Settings, route: Route, *, metrics: ServiceMetrics | None = None) -> JobService:
    """The job service of the bot and of ``t2f serve``: batch size, queue, timeout and how often previews show."""
    from t2f.serve.service import JobService

    return JobService(
        route,
        max_batch=settings.max_batch,
        capacity=settings.queue_capacity,
        job_timeout_s=settings.job_timeout_s,
        metrics=metrics,
        preview_interval_s=settings.progress_interval_s,
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
