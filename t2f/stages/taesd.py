"""TAESD, the tiny Stable Diffusion autoencoder, for cheap progress previews.

TAESD decodes SD 1.x latents (already multiplied by the VAE's 0.18215 scaling factor, exactly as
they sit in the denoising loop) with 1.2 M parameters instead of the full VAE decoder's 49.5 M, so
a preview every few steps costs almost nothing on a GPU. Its detail is lower than the real VAE's,
which is why the final image always goes through the full decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from t2f.errors import ModelUnavailable
from t2f.files.weights import resolve_snapshot


class LatentPreviewer:
    """Encode RGB images to SD latents and decode latents to small RGB previews with TAESD."""

    def __init__(self, autoencoder: torch.nn.Module, *, device: str, dtype: torch.dtype) -> None:
        self.autoencoder: Any = autoencoder.to(device=device, dtype=dtype).eval()
        self.device = device
        self.dtype = dtype

    @classmethod
    def from_pretrained(
        cls, model: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32, cache_dir: Path | None = None
    ) -> LatentPreviewer:
        """Load a diffusers ``AutoencoderTiny`` folder or cached hub id (e.g. ``madebyollin/taesd``)."""
        from diffusers import AutoencoderTiny

        resolved = resolve_snapshot(model, revision="main", cache_dir=cache_dir)
        try:
            autoencoder = AutoencoderTiny.from_pretrained(resolved.folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"TAESD model '{model}' could not be loaded ({type(exc).__name__}); check T2F_TAESD."
            ) from exc
        return cls(autoencoder, device=device, dtype=dtype)

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> torch.Tensor:
        """RGB images to latents.

        Parameters
        ----------
        images : (B, H, W, 3) uint8
            H and W multiples of 8.

        Returns
        -------
        latents : (B, 4, H/8, W/8) tensor in the SD latent space (scaling factor applied).
        """
        pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        pixels = pixels.to(self.device, self.dtype) / 127.5 - 1.0
        return self.autoencoder.encode(pixels).latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, *, max_side: int | None = None) -> np.ndarray:
        """Latents to RGB previews.

        Parameters
        ----------
        latents : (B, 4, h, w) tensor
        max_side : if given, previews are downscaled (area averaging) to at most this many pixels a side.

        Returns
        -------
        images : (B, 8h, 8w, 3) uint8, or smaller when ``max_side`` asks for it.
        """
        pixels = self.autoencoder.decode(latents.to(self.device, self.dtype)).sample.float()
        if max_side is not None and max(pixels.shape[-2:]) > max_side:
            factor = -(-max(pixels.shape[-2:]) // max_side)
            pixels = torch.nn.functional.avg_pool2d(pixels, factor)
        pixels = ((pixels.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).cpu().numpy()
