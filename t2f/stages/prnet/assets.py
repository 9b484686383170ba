"""Where PRNet's official files live upstream, and fetching them into the cache once.

Layout of a PRNet folder (``T2F_PRNET_DIR``, default ``<T2F_CACHE_DIR>/prnet``)::

    model.safetensors, config.json    converted weights (what t2f loads)
    uv-data/                          upstream UV files, sha256-checked
    tf/                               the official TF checkpoint, kept for re-conversion
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from t2f.errors import ModelUnavailable
from t2f.files.fetch import copy_verified, fetch_file
from t2f.stages.prnet.checkpoint import CONFIG_FILE, WEIGHTS_FILE, import_tf_checkpoint
from t2f.stages.prnet.upstream import (
    CHECKPOINT_DATA_SHA256,
    CHECKPOINT_DATA_URL,
    CHECKPOINT_INDEX_SHA256,
    CHECKPOINT_NAME,
    UPSTREAM_DATA_URL,
)
from t2f.stages.prnet.uv import UV_FILES, UVData, face_indices_from_mask, load_mask, triangles_from_mask


@dataclass(frozen=True)
class PRNetAssets:
    """URLs and sha256s of everything PRNet needs; the defaults are the official files."""

    checkpoint_data_url: str = CHECKPOINT_DATA_URL
    data_url: str = UPSTREAM_DATA_URL  # holds net-data/<index> and uv-data/<files>
    checkpoint_data_sha256: str = CHECKPOINT_DATA_SHA256
    checkpoint_index_sha256: str = CHECKPOINT_INDEX_SHA256
    uv_sha256: dict[str, str] = field(default_factory=lambda: dict(UV_FILES))


def weights_present(folder: Path) -> bool:
    return (folder / WEIGHTS_FILE).is_file() and (folder / CONFIG_FILE).is_file()


def check_uv_rules(uv_dir: Path) -> None:
    """Derive face_ind and the triangles from the mask and require they equal the upstream files."""
    data = UVData.load(uv_dir)
    mask = load_mask(uv_dir / "uv_face_mask.png")
    if not np.array_equal(face_indices_from_mask(mask), data.face_ind):
        raise ModelUnavailable("PRNet's face_ind.txt does not follow from uv_face_mask.png; the UV data is damaged.")
    if not np.array_equal(triangles_from_mask(mask), data.triangles):
        raise ModelUnavailable("PRNet's triangles.txt does not follow from uv_face_mask.png; the UV data is damaged.")


def install_uv_data(folder: Path, *, assets: PRNetAssets, source: Path | None = None, progress: bool = True) -> Path:
    """Put the UV files in ``folder/uv-data``: copied from ``source`` or downloaded, each sha256-checked."""
    uv_dir = folder / "uv-data"
    for name, sha in assets.uv_sha256.items():
        if source is not None:
            copy_verified(source / name, uv_dir / name, sha256=sha)
        else:
            fetch_file(f"{assets.data_url}/uv-data/{name}", uv_dir / name, sha256=sha, progress=progress)
    check_uv_rules(uv_dir)
    return uv_dir


def download_prnet(folder: Path, *, assets: PRNetAssets | None = None, progress: bool = True) -> Path:
    """Fetch the UV data and the official checkpoint, convert it once, and return ``folder``.

    Already-present, verified files are not fetched again; a converted model is not rebuilt.
    """
    assets = assets or PRNetAssets()
    install_uv_data(folder, assets=assets, progress=progress)
    if weights_present(folder):
        return folder
    tf_dir = folder / "tf"
    fetch_file(
        f"{assets.data_url}/net-data/{CHECKPOINT_NAME}.index",
        tf_dir / f"{CHECKPOINT_NAME}.index",
        sha256=assets.checkpoint_index_sha256,
        progress=progress,
    )
    fetch_file(
        assets.checkpoint_data_url,
        tf_dir / f"{CHECKPOINT_NAME}.data-00000-of-00001",
        sha256=assets.checkpoint_data_sha256,
        progress=progress,
    )
    import_tf_checkpoint(tf_dir / CHECKPOINT_NAME, folder)
    return folder
