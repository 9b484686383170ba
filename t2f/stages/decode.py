"""The last step of painting, latents to image bytes on the device, as one function ``torch.compile`` can take whole.

The pipeline's own decode runs the VAE and scales its output to [0, 1]; t2f then turned that into uint8 in
a few more eager kernels. :class:`LatentDecoder` does the three in one function (the VAE decode, the
scaling, the rounding to bytes and the move to channels-last ``(N, H, W, 3)``), so with ``T2F_COMPILE_VAE``
they compile into one graph (replayed from CUDA graphs in the ``graphs`` modes) and the only copy back to
the host is the bytes. Its pixels are the pipeline's own path's (``tests/test_text2img.py``).
"""

from __future__ import annotations

from typing import Any, cast

import torch

from t2f.stages.compiling import TORCH_MODES


class LatentDecoder:
    """``(N, 4, h, w)`` latents -> ``(N, 8h, 8w, 3)`` uint8 RGB on the device, compiled in a ``T2F_COMPILE`` mode.

    Parameters
    ----------
    vae : the pipeline's ``AutoencoderKL``.
    mode : a ``T2F_COMPILE`` mode; ``off`` decodes eagerly.
    """

    def __init__(self, vae: Any, mode: str) -> None:
        self.vae = vae
        torch_mode = TORCH_MODES[mode]
        self.compiled: Any = None
        if torch_mode is not None:
            self.compiled = cast(Any, torch.compile(self.decode, mode=torch_mode, dynamic=False, fullgraph=False))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """The eager function (what is compiled): the pipeline's decode and scaling, then t2f's bytes."""
        images = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)[0]
        unit = (images / 2 + 0.5).clamp(0, 1)  # the pipeline's postprocess for output_type="pt"
        return (unit.float() * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        if self.compiled is None:
            return self.decode(latents)
        torch._dynamo.maybe_mark_dynamic(latents, 0)  # one graph for every bucket, as the UNet's
        return cast(torch.Tensor, self.compiled(latents))

    def use_eager(self) -> None:
        """After a compile error: decode eagerly from now on."""
        self.compiled = None
