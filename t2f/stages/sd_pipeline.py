"""Loading a Stable Diffusion 1.x pipeline for t2f: its scheduler, attention kernels, placement and the
optional speed-ups (channels-last, fused QKV, ``torch.compile``). Used by
:meth:`~t2f.stages.text2img.TextToImage.from_pretrained`; nothing here paints.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from t2f.stages.compiling import TORCH_MODES, parse_compile_mode


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
    compile_mode: bool | str = False,
) -> Any:
    """Scheduler, attention kernels, placement and optional speed-ups for a loaded SD 1.x pipeline.

    ``dtype`` casts the weights when given (``from_pretrained`` already loaded them in the right one).
    ``compile_mode`` is a ``T2F_COMPILE`` mode (``off``, ``default``, ``graphs``, ``graphs-single``).
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
    return compile_pipeline(pipeline, parse_compile_mode(compile_mode))


def compile_pipeline(pipeline: Any, mode: str) -> Any:
    """Wrap the UNet in ``torch.compile`` for a ``T2F_COMPILE`` mode (``off`` leaves it eager).

    Only the UNet: it makes all but two of the model calls per image, and its thousands of small kernel
    launches per step are what CUDA graphs remove. The VAE decode runs once per image and is bound by its
    convolutions' arithmetic, and DPM-Solver++ keeps its sigma table on the CPU: both stay eager
    (bench/results/gpu-nvidia-h200.md has the split).

    Shapes: static but for the batch, which is marked dynamic on every call (:func:`_dynamic_batch`).
    Fully static, every bucket with and without guidance was a compile of its own at every cold start and
    a cache load at every restart; ``dynamic=True`` made the image sides symbolic too and compiled for
    minutes. With the batch alone dynamic the UNet compiles into a graph per range of batch sizes that
    dynamo tells apart, and CUDA graphs are still recorded per bucket, in the warm-up. Compiled lazily:
    the warm-up's first calls pay for it.
    """
    if TORCH_MODES[mode] is not None and not hasattr(pipeline.unet, "_orig_mod"):
        pipeline.unet = compile_unet(pipeline.unet, mode)
    return pipeline


def compile_unet(unet: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``torch.compile`` a UNet (or DeepCache's shallow twin of one) for a ``T2F_COMPILE`` mode other than
    ``off``: static shapes but for the batch (:func:`_dynamic_batch`)."""
    compiled = cast(torch.nn.Module, torch.compile(unet, mode=TORCH_MODES[mode], dynamic=False, fullgraph=False))
    compiled.register_forward_pre_hook(_dynamic_batch, with_kwargs=True)  # runs eagerly, before dynamo's frame
    return compiled


def compile_single(pipeline: Any, mode: str) -> torch.nn.Module | None:
    """``graphs-single``'s second UNet: compiled fully static for one guided face (a UNet batch of 2), or ``None``.

    A face painted alone is faster on a static graph than on the batch-dynamic one, at the cost of one more
    graph to load at every start (bench/results/gpu-nvidia-h200.md). A separate ``torch.compile`` wrapper:
    dynamo keeps each wrapper's entries apart.
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
