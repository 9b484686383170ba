"""Text-to-image stage: a Stable Diffusion 1.x pipeline from diffusers, wrapped for t2f.

``TextToImage.generate(request) -> FaceImage`` reads like the diffusers pipeline it wraps:
1. check the request, 2. build a per-request generator from the seed, 3. run the denoising loop
with a step callback, 4. read the safety checker's verdict, 5. return a :class:`FaceImage`.
It never re-implements the pipeline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

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
    compile_mode,
    is_compile_error,
)
from t2f.stages.taesd import LatentPreviewer
from t2f.streams import StreamPerThread

log = logging.getLogger(__name__)
WITHHELD_BY_SAFETY = "The safety filter flagged this image, so it was withheld. Try a different prompt or seed."
TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def make_scheduler(name: str, config: Any) -> Any:
    """Build the named diffusers scheduler from a pipeline's scheduler config."""
    import diffusers

    if name == "dpmpp":
        # solver_order=2 is what the DPM-Solver++ authors recommend for guided sampling.
        return diffusers.DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    classes = {
        "pndm": diffusers.PNDMScheduler,
        "ddim": diffusers.DDIMScheduler,
        "euler": diffusers.EulerDiscreteScheduler,
        "euler_a": diffusers.EulerAncestralDiscreteScheduler,
        "unipc": diffusers.UniPCMultistepScheduler,
    }
    if name not in classes:
        raise ValueError(f"unknown scheduler {name!r}; allowed: dpmpp, {', '.join(classes)}")
    return classes[name].from_config(config)


def prepare_pipeline(
    pipeline: Any,
    *,
    device: str,
    dtype: torch.dtype | None = None,
    scheduler: str = "dpmpp",
    channels_last: bool = False,
    fuse_qkv: bool = False,
    compile_unet: bool | str = False,
) -> Any:
    """Scheduler, attention kernels, placement and optional speed-ups for a loaded SD 1.x pipeline.

    ``dtype`` casts the weights when given (``from_pretrained`` already loaded them in the right one).
    ``compile_unet`` is a ``T2F_COMPILE`` mode (``off``, ``default``, ``graphs``) or the old switch.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipeline.scheduler = make_scheduler(scheduler, pipeline.scheduler.config)
    # Scaled-dot-product attention: PyTorch picks flash or memory-efficient kernels on CUDA.
    pipeline.unet.set_attn_processor(AttnProcessor2_0())
    pipeline.vae.set_attn_processor(AttnProcessor2_0())
    if fuse_qkv:  # one matmul for query, key and value instead of three
        pipeline.fuse_qkv_projections()
    pipeline = pipeline.to(device) if dtype is None else pipeline.to(device=device, dtype=dtype)
    if channels_last:  # NHWC convolutions are the fast path for tensor cores
        pipeline.unet.to(memory_format=torch.channels_last)
        pipeline.vae.to(memory_format=torch.channels_last)
    return compile_pipeline(pipeline, compile_mode(compile_unet))


def compile_pipeline(pipeline: Any, mode: str) -> Any:
    """Wrap the UNet in ``torch.compile`` for a ``T2F_COMPILE`` mode (``off`` leaves it eager).

    Only the UNet: it is 25 (x2 with guidance) of the ~27 model calls per image, and its ~2,500 kernel
    launches per step are what CUDA graphs remove. The VAE decode runs once per image and is bound by
    its convolutions' arithmetic (28.5 ms of 218 ms on an H200 with the UNet replayed), and
    DPM-Solver++ keeps its sigma table on the CPU: both stay eager (their gain on a GPU is unmeasured).

    Shapes: static but for the batch, which is marked dynamic on every call (:func:`_dynamic_batch`).
    Fully static, each bucket with and without guidance compiled alone (~53 s each, and ~10.7 s each
    again from the cache at every restart, on an H100); ``dynamic=True`` made the image sides symbolic
    too and one compile ran past 7 minutes. With the batch alone dynamic the UNet compiles into a
    graph per range of batch sizes that dynamo tells apart (UNet batches 2-15 and 16+ on a CPU, where the
    convolution backend depends on it; guided batches are never 1), and CUDA graphs are still recorded
    per bucket, in the warm-up. Compiled lazily: the warm-up's first calls pay for it.
    """
    torch_mode = TORCH_MODES[mode]
    if torch_mode is not None and not hasattr(pipeline.unet, "_orig_mod"):
        unet = cast(torch.nn.Module, torch.compile(pipeline.unet, mode=torch_mode, dynamic=False, fullgraph=False))
        unet.register_forward_pre_hook(_dynamic_batch, with_kwargs=True)  # runs eagerly, before dynamo's frame
        pipeline.unet = unet
    return pipeline


def compile_single(pipeline: Any, mode: str) -> torch.nn.Module | None:
    """``graphs-single``'s second UNet: compiled fully static for one guided face (a UNet batch of 2), or ``None``.

    The batch-dynamic graph paints one face in ~295 ms on an H200 where static graphs took 218 ms
    (bench/results/gpu-nvidia-h200.md); this one costs one more graph at every start (~10.7 s from the
    cache on an H100). A separate ``torch.compile`` wrapper: dynamo keeps each wrapper's entries apart.
    """
    if mode != "graphs-single":
        return None
    unet = getattr(pipeline.unet, "_orig_mod", pipeline.unet)
    return cast(torch.nn.Module, torch.compile(unet, mode=TORCH_MODES[mode], dynamic=False, fullgraph=False))


def _dynamic_batch(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Mark the batch dimension of the UNet's latents and text embeddings dynamic (where dynamo can keep it so)."""
    for tensor in (args[0] if args else kwargs.get("sample"), kwargs.get("encoder_hidden_states")):
        if isinstance(tensor, torch.Tensor) and tensor.dim() > 0:
            torch._dynamo.maybe_mark_dynamic(tensor, 0)


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
        self.checks = StreamPerThread(device)  # photos are checked on the faces thread, beside the painting
        self.pipeline.set_progress_bar_config(disable=True)

    @property
    def compiled(self) -> bool:
        """Whether the UNet runs through ``torch.compile`` (any mode)."""
        return hasattr(self.pipeline.unet, "_orig_mod")

    def use_eager(self) -> None:
        """Drop the compiled UNet (after a compile or capture error): eager, at each batch's own size."""
        self.pipeline.unet = getattr(self.pipeline.unet, "_orig_mod", self.pipeline.unet)
        self.buckets, self.single_unet = (), None

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
        compile_unet: bool | str = False,
        max_batch: int = 1,
    ) -> TextToImage:
        """Load a Stable Diffusion 1.x pipeline from a local folder or the hub cache, never the network.

        With ``compile_unet`` (a ``T2F_COMPILE`` mode) batches are padded to the buckets up to ``max_batch``.

        Raises
        ------
        ModelUnavailable
            When the weights are missing or incomplete; names the model and how to fetch it.
        """
        from diffusers import StableDiffusionPipeline

        resolved = resolve_snapshot(model, revision=revision, cache_dir=cache_dir)
        check_pipeline_folder(resolved, skip=() if safety_checker else SAFETY_COMPONENTS)
        extra: dict[str, Any] = {}
        if not safety_checker:
            extra = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
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
            compile_unet=compile_unet,
        )
        previewer = (
            LatentPreviewer.from_pretrained(taesd, device=device, dtype=torch_dtype, cache_dir=cache_dir)
            if taesd
            else None
        )
        mode = compile_mode(compile_unet)
        return cls(
            pipeline,
            device=device,
            dtype=torch_dtype,
            model=model,
            revision=resolved.revision,
            previewer=previewer,
            buckets=buckets_for(max_batch) if mode != "off" else (),
            single_unet=compile_single(pipeline, mode),
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

    @torch.no_grad()
    def check_image(self, image: np.ndarray) -> bool:
        """Whether the pipeline's safety checker flags ``image`` (H, W, 3) uint8 RGB (a member's photo).

        The same ``StableDiffusionSafetyChecker`` and CLIP feature extractor that judge painted images;
        ``False`` when the pipeline was loaded without them (``T2F_SAFETY_CHECKER=off``).
        """
        checker, extractor = self.pipeline.safety_checker, self.pipeline.feature_extractor
        if checker is None or extractor is None:
            return False
        with self.checks():
            features = extractor(images=[image], return_tensors="pt").pixel_values.to(self.device, checker.dtype)
            # The checker also blanks flagged images; it takes them as (N, H, W, 3) floats in [0, 1].
            _, flags = checker(images=image[None].astype(np.float32) / 255.0, clip_input=features)
            return bool(flags[0])

    @staticmethod
    def check_request(request: FaceRequest) -> None:
        """Raise :class:`InvalidRequest` quoting the first value the stage cannot use."""
        check_face_request(request)

    @staticmethod
    def check_batch(requests: Sequence[FaceRequest]) -> None:
        """A batch shares one denoising loop, so steps, guidance and size must match."""
        if not requests:
            raise InvalidRequest("The batch is empty.")
        for request in requests:
            TextToImage.check_request(request)
        shapes = {(r.steps, r.guidance, r.size) for r in requests}
        if len(shapes) > 1:
            raise InvalidRequest(f"A batch must share steps, guidance and size; got {sorted(shapes)}.")

    def generate(
        self, request: FaceRequest, *, on_step: StepCallback | None = None, preview_every: int = 0
    ) -> FaceImage:
        """Paint one image. See :meth:`generate_batch`."""
        return self.generate_batch([request], on_step=on_step, preview_every=preview_every)[0]

    @torch.no_grad()
    def generate_batch(
        self, requests: Sequence[FaceRequest], *, on_step: StepCallback | None = None, preview_every: int = 0
    ) -> list[FaceImage]:
        """Paint several images in one denoising loop.

        Each request gets its own ``torch.Generator`` seeded from its seed, so a request paints
        the same pixels (up to float tolerance) alone or in any batch on the same device. With
        ``buckets`` the batch is padded up to its bucket with copies of its last request (their
        images are dropped), so a compiled UNet only ever sees the shapes the warm-up compiled; a
        batch larger than every bucket runs in bucket-sized parts.

        Parameters
        ----------
        requests : requests sharing steps, guidance and size.
        on_step : called on this thread after every denoising step.
        preview_every : with a TAESD previewer, attach previews every N steps and on the last (0: never).
        """
        # 1. Check inputs.
        self.check_batch(requests)
        if self.buckets and len(requests) > self.buckets[-1]:
            size = self.buckets[-1]
            parts = [requests[i : i + size] for i in range(0, len(requests), size)]
            return [
                face
                for part in parts
                for face in self.generate_batch(part, on_step=on_step, preview_every=preview_every)
            ]
        count = len(requests)
        padded = list(requests) + [requests[-1]] * (bucket_for(count, self.buckets) - count if self.buckets else 0)
        try:
            output, timings = self._paint(padded, count, on_step, preview_every)
        except Exception as exc:
            if not (self.compiled and is_compile_error(exc)):
                raise
            # One line, then eager for good: a compile failure must never stop the bot.
            log.warning("the compiled UNet failed (%s); painting eagerly from now on", first_line(exc))
            self.use_eager()
            output, timings = self._paint(list(requests), count, on_step, preview_every)

        # 4. Read the safety verdict; 5. build results (padding copies dropped).
        flags: list[bool] | None = output.nsfw_content_detected
        results = []
        for i, request in enumerate(requests):
            nsfw = None if flags is None else bool(flags[i])
            pixels = np.clip(np.round(output.images[i] * 255.0), 0, 255).astype(np.uint8)
            results.append(
                FaceImage(
                    request=request,
                    image=None if nsfw else pixels,
                    nsfw=nsfw,
                    withheld_reason=WITHHELD_BY_SAFETY if nsfw else None,
                    dropped_prompt=self.dropped_prompt_text(request.prompt),
                    timings=dict(timings),
                )
            )
        return results

    def _paint(
        self, requests: Sequence[FaceRequest], count: int, on_step: StepCallback | None, preview_every: int
    ) -> tuple[Any, dict[str, float]]:
        """Steps 2-3 of :meth:`generate_batch` for a (padded) batch; previews cover the first ``count``."""
        first = requests[0]
        marks: dict[str, float] = {"start": time.perf_counter()}

        # 3. Denoise, reporting each step.
        def step_end(pipe: Any, step_index: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            marks["last_step"] = time.perf_counter()
            if on_step is not None:
                total = int(pipe.num_timesteps)
                step = step_index + 1
                previews = None
                if self.previewer is not None and preview_every > 0 and (step % preview_every == 0 or step == total):
                    previews = tuple(self.previewer.decode(kwargs["latents"][:count], max_side=256))
                on_step(StepProgress(step=step, total=total, previews=previews))
            return kwargs

        compiled_unet = self.pipeline.unet
        # Unguided (guidance <= 1, a rare request): the eager UNet. Its batch of one would be one more
        # compiled graph to load at every start (~10.7 s each from the cache on an H100).
        unguided = self.compiled and first.guidance <= 1
        if unguided:
            self.pipeline.unet = compiled_unet._orig_mod
        elif self.single_unet is not None and len(requests) == 1:  # one face alone: the static graph
            self.pipeline.unet = self.single_unet
        try:
            output = self._run_pipeline(requests, step_end)
        finally:
            self.pipeline.unet = compiled_unet
        end = time.perf_counter()
        last_step = marks.get("last_step", end)
        return output, {"encode_and_denoise": last_step - marks["start"], "decode_and_safety": end - last_step}

    def _run_pipeline(self, requests: Sequence[FaceRequest], step_end: Callable[..., dict[str, Any]]) -> Any:
        first = requests[0]
        # 2. One generator per request makes its noise independent of the batch around it.
        generators = [torch.Generator(device=self.device).manual_seed(r.seed) for r in requests]
        return self.pipeline(
            prompt=[r.prompt for r in requests],
            negative_prompt=[r.negative_prompt for r in requests],
            height=first.size,
            width=first.size,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            generator=generators,
            output_type="np",
            callback_on_step_end=step_end,
            callback_on_step_end_tensor_inputs=["latents"],
        )
