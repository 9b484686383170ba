"""Guiding each request of a batch at its own classifier-free guidance scale through one pipeline call."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def per_request_guidance(unet: torch.nn.Module, scales: Sequence[float]) -> Iterator[float]:
    """Guide each request of a batch at its own scale through one pipeline call; yields the call's scale.

    diffusers guides a whole batch with one ``guidance_scale`` ``g``: ``uncond + g * (text - uncond)``. When
    the scales differ, the call gets the largest, and a forward hook on the UNet rescales each request's
    text half to ``uncond + (g_i / g) * (text - uncond)``, so the pipeline's own step gives
    ``uncond + g_i * (text - uncond)``. The hook runs outside any compiled graph and changes no shape,
    which is why guided jobs of any scale share a batch.
    """
    top = max(scales)
    if len(set(scales)) == 1 or top <= 1:
        yield top
        return

    def rescale(module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> Any:
        noise = output[0]
        uncond, text = noise.chunk(2)
        ratio = torch.tensor([g / top for g in scales], device=noise.device, dtype=noise.dtype).view(-1, 1, 1, 1)
        return (torch.cat([uncond, uncond + ratio * (text - uncond)]), *output[1:])

    hook = unet.register_forward_hook(rescale, with_kwargs=True)
    try:
        yield top
    finally:
        hook.remove()
