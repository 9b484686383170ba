from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.data import astronaut

from t2f.errors import ModelUnavailable
from t2f.stages.taesd import LatentPreviewer


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_real_taesd_round_trip_keeps_the_astronaut(shared_dir: Path) -> None:
    previewer = LatentPreviewer.from_pretrained(str(shared_dir / "taesd" / "diffusers"))
    image = astronaut()  # (512, 512, 3) uint8
    latents = previewer.encode(image[None])
    assert tuple(latents.shape) == (1, 4, 64, 64)
    decoded = previewer.decode(latents)
    assert decoded.shape == (1, 512, 512, 3) and decoded.dtype == np.uint8
    assert psnr(decoded[0], image) > 25.0
    small = previewer.decode(latents, max_side=128)
    assert small.shape == (1, 128, 128, 3)


def test_missing_taesd_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailable, match="T2F_TAESD"):
        LatentPreviewer.from_pretrained(str(tmp_path / "empty"))
