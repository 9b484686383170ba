"""The PRNet stage: batched ResFCN256 inference from 256x256 crops to raw position maps."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from t2f.errors import ModelUnavailable
from t2f.stages.prnet.checkpoint import CONFIG_FILE, WEIGHTS_FILE, PRNetConfig, file_sha256
from t2f.stages.prnet.network import ResFCN256

FETCH_HINT = "Fetch and convert the official weights with: t2f download"


class PRNet:
    """Regress UV position maps from face crops.

    Parameters
    ----------
    network : a ``ResFCN256`` with weights loaded.
    config : its :class:`PRNetConfig`.
    device, dtype : where it runs (half precision is optional on CUDA).
    """

    def __init__(
        self,
        network: ResFCN256,
        config: PRNetConfig,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        compile_network: bool = False,
    ) -> None:
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        network = network.to(device=device, dtype=dtype).eval()
        # Module.to(memory_format=...) works at run time; torch's overloads leave the keyword out.
        self.network = network.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        # torch.compile is lazy: the first batch (the start-up warm-up) compiles it.
        self.forward = torch.compile(self.network) if compile_network else self.network
        self.config = config
        self.device = device
        self.dtype = dtype

    @classmethod
    def from_pretrained(
        cls,
        folder: Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        compile_network: bool = False,
    ) -> PRNet:
        """Load ``config.json`` and ``model.safetensors`` from ``folder``, verifying the checksum.

        Raises
        ------
        ModelUnavailable
            When files are missing, damaged or do not match the recorded sha256.
        """
        from safetensors.torch import load_file

        config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        if not config_path.is_file() or not weights_path.is_file():
            raise ModelUnavailable(f"PRNet weights are not in '{folder}'. {FETCH_HINT}")
        try:
            raw = json.loads(config_path.read_text(encoding="utf-8"))
            config = PRNetConfig(**{f.name: raw[f.name] for f in fields(PRNetConfig) if f.name in raw})
        except (ValueError, TypeError) as exc:
            raise ModelUnavailable(f"PRNet's {CONFIG_FILE} in '{folder}' is damaged. {FETCH_HINT}") from exc
        if config.sha256 and file_sha256(weights_path) != config.sha256:
            raise ModelUnavailable(f"PRNet's {WEIGHTS_FILE} in '{folder}' fails its sha256 check. {FETCH_HINT}")
        network = ResFCN256(base=config.base_width)
        try:
            network.load_state_dict(load_file(str(weights_path)), strict=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"PRNet's {WEIGHTS_FILE} in '{folder}' does not fit ResFCN256. {FETCH_HINT}"
            ) from exc
        return cls(
            network, config, device=device, dtype=dtype, channels_last=channels_last, compile_network=compile_network
        )

    @torch.inference_mode()
    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Run the network on a batch of crops.

        Parameters
        ----------
        crops : (N, 256, 256, 3) float32 RGB in [0, 1]

        Returns
        -------
        raw : (N, 256, 256, 3) float32 in [0, 1]; times ``config.max_pos`` it is the position map
            in crop pixels (x column, y row, z depth; larger z is nearer the camera).
        """
        res = self.config.resolution
        if crops.ndim != 4 or crops.shape[1:] != (res, res, 3):
            raise ValueError(f"crops must be (N, {res}, {res}, 3), got {crops.shape}")
        batch = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32)).to(self.device)
        batch = batch.permute(0, 3, 1, 2).to(self.dtype).contiguous(memory_format=self.memory_format)
        out = self.forward(batch)
        return out.permute(0, 2, 3, 1).float().cpu().numpy()
