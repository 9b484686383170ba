"""Text-to-image stage: a Stable Diffusion 1.x pipeline from diffusers, wrapped for t2f.

``TextToImage.generate_batch(requests) -> list[FaceImage]`` reads like the diffusers pipeline it wraps:
1. check the requests, 2. pad the batch to its compiled bucket, 3. paint (a generator per seed, the
denoising loop with a step callback, the decode), 4. the safety checker's verdict, 5. the
:class:`FaceImage` results. It never re-implements the pipeline. The safety checker is kept beside the
pipeline rather than inside it, so the serving route can run it off the GPU thread (``check_safety=False``
and :meth:`TextToImage.check_image`); loading or setting up the pipeline is :mod:`t2f.stages.sd_pipeline`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from t2f.bounds import check_face_request
from t2f.errors import InvalidRequest, ModelUnavailable, first_line
from t2f.faces import FaceImage, FaceRequest, StepCallback, StepProgress
from t2f.files.weights import SAFETY_COMPONENTS, check_pipeline_folder, resolve_snapshot
from t2f.stages.compiling import (
    TORCH_MODES,
    CompileCache,
    bucket_for,
    buckets_for,
    is_compile_error,
    parse_compile_mode,
)
from t2f.stages.decode import LatentDecoder
from t2f.stages.guidance import per_request_guidance
from t2f.stages.profiles import FastProfile, ProfileSwitch
from t2f.stages.sd_pipeline import compile_single, compile_unet, prepare_pipeline
from t2f.stages.taesd import LatentPreviewer
from t2f.streams import StreamPerThread

log = logging.getLogger(__name__)
WITHHELD_BY_SAFETY = "The safety filter flagged this image, so it was withheld. Try a different prompt or seed."
SAFETY_OFF = (
    "T2F_SAFETY_CHECKER=off: painted images and members' photos are NOT checked for sexual content; "
    "only the prompt filter stands between a prompt and the channel"
)
TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
PreviewSteps = Callable[[int], bool]  # whether to decode previews after this (1-based) step


class TextToImage:
    """Paint images from prompts with a loaded ``StableDiffusionPipeline``.

    Parameters
    ----------
    pipeline : a diffusers ``StableDiffusionPipeline`` already on ``device`` in ``dtype``.
    device, dtype : where it runs; explicit, never guessed here.
    model, revision : what was loaded, for metadata (revision is a commit sha or ``None``).
    previewer : optional TAESD decoder for step previews.
    buckets : batch sizes a compiled UNet sees (see :func:`~t2f.stages.compiling.buckets_for`); a batch is
        padded up to its bucket. Empty (eager): batches run at their own size.
    single_unet : a static compiled UNet for one guided face (:func:`compile_single`), or ``None``.
    fast, compile_mode : what the ``fast`` profile changes (:class:`~t2f.stages.profiles.FastProfile`), and the
        ``T2F_COMPILE`` mode its DeepCache twin is compiled in (the UNet's).
    decoder : latents to bytes in one function (:class:`~t2f.stages.decode.LatentDecoder`, ``T2F_COMPILE_VAE``);
        ``None``: the pipeline's own decode.
    """

    def __init__(
        self,
        pipeline: Any,
        *,
        device: str,
        dtype: torch.dtype,
        model: str,
        revision: str | None = None,
        previewer: LatentPreviewer | None = None,
        buckets: tuple[int, ...] = (),
        single_unet: torch.nn.Module | None = None,
        fast: FastProfile | None = None,
        compile_mode: str = "off",
        decoder: LatentDecoder | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.buckets = buckets
        self.single_unet = single_unet
        self.compile_cache: CompileCache | None = None  # set by whoever pointed inductor at a cache
        self.device = device
        self.dtype = dtype
        self.model = model
        self.revision = revision
        self.previewer = previewer
        # The safety checker runs beside the pipeline, not inside its call: on the faces thread (its own
        # CUDA stream) while the GPU thread paints the next batch.
        self.safety_checker = getattr(pipeline, "safety_checker", None)
        self.feature_extractor = getattr(pipeline, "feature_extractor", None)
        if self.safety_checker is not None:
            pipeline.safety_checker = None
        self.checks = StreamPerThread(device)
        self.pipeline.set_progress_bar_config(disable=True)
        self.decoder = decoder
        self.profiles = ProfileSwitch(pipeline, FastProfile())
        self.use_fast_profile(fast or FastProfile(), compile_mode)

    def use_fast_profile(self, fast: FastProfile, compile_mode: str) -> None:
        """Set up what the ``fast`` profile changes, DeepCache's twin compiled in ``compile_mode`` (replacing
        whatever was set up before)."""
        self.profiles.remove()
        twin = (lambda unet: compile_unet(unet, compile_mode)) if TORCH_MODES[compile_mode] is not None else None
        self.profiles = ProfileSwitch(self.pipeline, fast, compile_twin=twin)

    @property
    def compiled(self) -> bool:
        """Whether the UNet runs through ``torch.compile`` (any mode)."""
        return hasattr(self.pipeline.unet, "_orig_mod")

    def use_eager(self) -> None:
        """Drop the compiled UNet (after a compile or capture error): eager, at each batch's own size."""
        self.pipeline.unet = getattr(self.pipeline.unet, "_orig_mod", self.pipeline.unet)
        self.buckets, self.single_unet = (), None
        self.profiles.use_eager()
        if self.decoder is not None:
            self.decoder.use_eager()

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        revision: str = "main",
        device: str = "cpu",
        dtype: str = "float32",
        scheduler: str = "dpmpp",
        safety_checker: bool = True,
        cache_dir: Path | None = None,
        taesd: str = "",
        channels_last: bool = False,
        fuse_qkv: bool = False,
        compile_mode: bool | str = False,
        max_batch: int = 1,
        fast: FastProfile | None = None,
        compile_vae: bool = False,
    ) -> TextToImage:
        """Load a Stable Diffusion 1.x pipeline from a local folder or the hub cache, never the network.

        With ``compile_mode`` (a ``T2F_COMPILE`` mode) batches are padded to the buckets up to ``max_batch``,
        and with ``compile_vae`` the decode is compiled in the same mode.

        Raises
        ------
        ModelUnavailable
            When the weights are missing or incomplete; names the model and how to fetch it.
        """
        from diffusers import StableDiffusionPipeline

        resolved = resolve_snapshot(model, revision=revision, cache_dir=cache_dir)
        check_pipeline_folder(resolved, skip=() if safety_checker else SAFETY_COMPONENTS)
        extra: dict[str, Any] = {}
        if not safety_checker:  # diffusers' own warning is muted with it: t2f says it instead
            extra = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
            log.warning(SAFETY_OFF)
        torch_dtype = TORCH_DTYPES[dtype]
        try:
            pipeline = StableDiffusionPipeline.from_pretrained(
                resolved.folder, dtype=torch_dtype, local_files_only=True, **extra
            )
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"Model '{model}' could not be loaded ({type(exc).__name__}); its files look damaged. "
                "Fetch it again with: t2f download"
            ) from exc
        pipeline = prepare_pipeline(
            pipeline,
            device=device,
            scheduler=scheduler,
            channels_last=channels_last,
            fuse_qkv=fuse_qkv,
            compile_mode=compile_mode,
        )
        previewer = (
            LatentPreviewer.from_pretrained(taesd, device=device, dtype=torch_dtype, cache_dir=cache_dir)
            if taesd
            else None
        )
        mode = parse_compile_mode(compile_mode)
        return cls(
            pipeline,
            device=device,
            dtype=torch_dtype,
            model=model,
            revision=resolved.revision,
            previewer=previewer,
            buckets=buckets_for(max_batch) if mode != "off" else (),
            single_unet=compile_single(pipeline, mode),
            fast=fast,
            compile_mode=mode,
            decoder=LatentDecoder(pipeline.vae, mode) if compile_vae and mode != "off" else None,
        )

    @property
    def max_prompt_tokens(self) -> int:
        """Prompt tokens the text encoder reads, without the start and end tokens."""
        return int(self.pipeline.tokenizer.model_max_length) - 2

    def dropped_prompt_text(self, prompt: str) -> str:
        """The part of ``prompt`` past the text encoder's token limit ("" when it all fits)."""
        tokenizer = self.pipeline.tokenizer
        ids = tokenizer(prompt, add_special_tokens=False, truncation=False).input_ids
        if len(ids) <= self.max_prompt_tokens:
            return ""
        return tokenizer.decode(ids[self.max_prompt_tokens :]).strip()

    @property
    def has_safety_checker(self) -> bool:
        """Whether images are checked (``False`` with ``T2F_SAFETY_CHECKER=off``)."""
        return self.safety_checker is not None and self.feature_extractor is not None

    def check_image(self, image: np.ndarray) -> bool | None:
        """Whether the safety checker flags ``image`` (H, W, 3) uint8 RGB, a painted image or a member's photo;
        ``None`` when the pipeline was loaded without it (``T2F_SAFETY_CHECKER=off``)."""
        flags = self.check_images([image])
        return None if flags is None else flags[0]

    @torch.no_grad()
    def check_images(self, images: Sequence[np.ndarray]) -> list[bool] | None:
        """The safety checker's verdicts on (H, W, 3) uint8 RGB images, on this thread's own CUDA stream: the
        same ``StableDiffusionSafetyChecker`` and CLIP feature extractor the pipeline would run."""
        checker, extractor = self.safety_checker, self.feature_extractor
        if checker is None or extractor is None:
            return None
        with self.checks():
            features = extractor(images=list(images), return_tensors="pt").pixel_values.to(self.device, checker.dtype)
            # The checker also blanks flagged images; it takes them as (N, H, W, 3) floats in [0, 1].
            floats = np.stack(images).astype(np.float32) / 255.0
            _, flags = checker(images=floats, clip_input=features)
            return [bool(flag) for flag in flags]

    @staticmethod
    def check_request(request: FaceRequest) -> None:
        """Raise :class:`InvalidRequest` quoting the first value the stage cannot use."""
        check_face_request(request)

    @staticmethod
    def check_batch(requests: Sequence[FaceRequest]) -> None:
        """A batch shares one denoising loop: steps, size and profile must match, and either every request is
        guided (guidance above 1, any scale) or none is, since guidance doubles the UNet's batch."""
        if not requests:
            raise InvalidRequest("The batch is empty.")
        for request in requests:
            TextToImage.check_request(request)
        shapes = {(r.steps, r.size, r.guidance > 1, r.profile) for r in requests}
        if len(shapes) > 1:
            raise InvalidRequest(
                f"A batch must share steps, size, whether it is guided and profile; got {sorted(shapes)}."
            )

    def generate(
        self,
        request: FaceRequest,
        *,
        on_step: StepCallback | None = None,
        previews: PreviewSteps | None = None,
        check_safety: bool = True,
    ) -> FaceImage:
        """Paint one image. See :meth:`generate_batch`."""
        return self.generate_batch([request], on_step=on_step, previews=previews, check_safety=check_safety)[0]

    @torch.no_grad()
    def generate_batch(
        self,
        requests: Sequence[FaceRequest],
        *,
        on_step: StepCallback | None = None,
        previews: PreviewSteps | None = None,
        check_safety: bool = True,
    ) -> list[FaceImage]:
        """Paint several images in one denoising loop.

        Each request gets its own ``torch.Generator`` seeded from its seed, and its own guidance scale, so a
        request paints the same pixels (up to float tolerance) alone or in any batch on the same device.
        With ``buckets`` the batch is padded up to its bucket with copies of its last request (their images
        are dropped), so a compiled UNet only ever sees the shapes the warm-up compiled; a batch larger than
        every bucket runs in bucket-sized parts.

        Parameters
        ----------
        requests : requests sharing steps and size, all guided or none (:meth:`check_batch`).
        on_step : called on this thread after every denoising step.
        previews : with a TAESD previewer, called after every step: whether to attach previews to it.
        check_safety : run the safety checker here; ``False`` leaves it to the caller (the serving route
            runs it off the GPU thread), and every ``nsfw`` is then ``None``.
        """
        # 1. Check inputs.
        self.check_batch(requests)
        # 2. Split a batch larger than every bucket; pad the rest to its bucket.
        if self.buckets and len(requests) > self.buckets[-1]:
            size = self.buckets[-1]
            parts = [requests[i : i + size] for i in range(0, len(requests), size)]
            return [
                face
                for part in parts
                for face in self.generate_batch(part, on_step=on_step, previews=previews, check_safety=check_safety)
            ]
        count = len(requests)
        padded = list(requests) + [requests[-1]] * (bucket_for(count, self.buckets) - count if self.buckets else 0)
        # 3. Paint: noise from each seed, the denoising loop, the decode (uint8 on the device).
        try:
            pixels, timings = self._paint(padded, count, on_step, previews)
        except Exception as exc:
            if not (self.compiled and is_compile_error(exc)):
                raise
            # One line, then eager for good: a compile failure must never stop the bot.
            log.warning("the compiled UNet failed (%s); painting eagerly from now on", first_line(exc))
            self.use_eager()
            pixels, timings = self._paint(list(requests), count, on_step, previews)
        images = list(pixels[:count])
        # 4. The safety checker's verdict.
        flags = None
        if check_safety and self.has_safety_checker:
            started = time.perf_counter()
            flags = self.check_images(images)
            timings["safety_check"] = time.perf_counter() - started
        # 5. The results (padding copies dropped).
        return [
            FaceImage(
                request=request,
                image=None if flags is not None and flags[i] else image,
                nsfw=None if flags is None else flags[i],
                withheld_reason=WITHHELD_BY_SAFETY if flags is not None and flags[i] else None,
                dropped_prompt=self.dropped_prompt_text(request.prompt),
                timings=dict(timings),
            )
            for i, (request, image) in enumerate(zip(requests, images, strict=True))
        ]

    def _paint(
        self, requests: Sequence[FaceRequest], count: int, on_step: StepCallback | None, previews: PreviewSteps | None
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Step 3 of :meth:`generate_batch` for a (padded) batch: (N, H, W, 3) uint8 images and the seconds
        denoising and decoding; previews cover the first ``count`` requests."""
        marks: dict[str, float] = {"start": time.perf_counter()}

        def step_end(pipe: Any, step_index: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            marks["last_step"] = time.perf_counter()
            if on_step is not None:
                total, step = int(pipe.num_timesteps), step_index + 1
                shown = None
                if self.previewer is not None and previews is not None and previews(step):
                    shown = tuple(self.previewer.decode(kwargs["latents"][:count], max_side=256))
                on_step(StepProgress(step=step, total=total, previews=shown))
            return kwargs

        compiled_unet = self.pipeline.unet
        # Unguided (guidance <= 1, a rare request): the eager UNet. Its batch of one would be one more
        # compiled graph to load at every start.
        if self.compiled and requests[0].guidance <= 1:
            self.pipeline.unet = compiled_unet._orig_mod
        elif self.single_unet is not None and len(requests) == 1:  # one face alone: the static graph
            self.pipeline.unet = self.single_unet
        try:
            with (
                self.profiles.painting(self.pipeline, requests[0].profile),
                per_request_guidance(self.pipeline.unet, [r.guidance for r in requests]) as scale,
            ):
                output = self._run_pipeline(requests, scale, step_end)
            if self.decoder is not None:  # latents: the decode and the bytes in one (compiled) function
                pixels = self.decoder(output.images).cpu().numpy()
            else:
                decoded = output.images  # (N, 3, H, W) in [0, 1] on the device
                pixels = (
                    (decoded.float() * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                )
        finally:
            self.pipeline.unet = compiled_unet
        end = time.perf_counter()
        last_step = marks.get("last_step", end)
        return pixels, {"encode_and_denoise": last_step - marks["start"], "decode": end - last_step}

    def _run_pipeline(
        self, requests: Sequence[FaceRequest], guidance: float, step_end: Callable[..., dict[str, Any]]
    ) -> Any:
        first = requests[0]
        # One generator per request makes its noise independent of the batch around it.
        generators = [torch.Generator(device=self.device).manual_seed(r.seed) for r in requests]
        return self.pipeline(
            prompt=[r.prompt for r in requests],
            negative_prompt=[r.negative_prompt for r in requests],
            height=first.size,
            width=first.size,
            num_inference_steps=first.steps,
            guidance_scale=guidance,
            generator=generators,
            output_type="pt" if self.decoder is None else "latent",
            callback_on_step_end=step_end,
            callback_on_step_end_tensor_inputs=["latents"],
        )
