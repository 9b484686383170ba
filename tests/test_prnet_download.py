"""The real download path against a loopback HTTP server that mimics the upstream locations."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from prnet_tf_reference import random_variables, read_variable_shapes, write_tf_checkpoint

from t2f.errors import ModelUnavailable
from t2f.files.fetch import sha256_of
from t2f.stages.prnet.assets import PRNetAssets, download_prnet
from t2f.stages.prnet.model import PRNet
from t2f.stages.prnet.upstream import CHECKPOINT_NAME
from t2f.stages.prnet.uv import UV_FILES, UVData


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream(tmp_path: Path, shared_dir: Path) -> Iterator[tuple[str, Path, PRNetAssets]]:
    """A web root with net-data/<index>, uv-data/*, and the checkpoint data file at /drive/data."""
    root = tmp_path / "www"
    shutil.copytree(shared_dir / "prnet" / "uv-data", root / "uv-data")
    shapes = read_variable_shapes(shared_dir / "docs" / "prnet-checkpoint-variables.tsv")
    write_tf_checkpoint(root / "net-data" / CHECKPOINT_NAME, random_variables(shapes, seed=5))
    data = root / "net-data" / f"{CHECKPOINT_NAME}.data-00000-of-00001"
    (root / "drive").mkdir()
    data.rename(root / "drive" / "data")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    assets = PRNetAssets(
        checkpoint_data_url=f"{base}/drive/data",
        data_url=base,
        checkpoint_data_sha256=sha256_of(root / "drive" / "data"),
        checkpoint_index_sha256=sha256_of(root / "net-data" / f"{CHECKPOINT_NAME}.index"),
    )
    yield base, root, assets
    server.shutdown()
    thread.join()


def test_download_fetches_verifies_and_converts(upstream: tuple[str, Path, PRNetAssets], tmp_path: Path) -> None:
    _, _, assets = upstream
    folder = download_prnet(tmp_path / "cache" / "prnet", assets=assets, progress=False)
    assert sorted(p.name for p in (folder / "uv-data").iterdir()) == sorted(UV_FILES)
    uv = UVData.load(folder / "uv-data")
    assert uv.triangles.shape == (86_906, 3)
    prnet = PRNet.from_pretrained(folder)
    out = prnet.predict(np.zeros((1, 256, 256, 3), np.float32))
    assert out.shape == (1, 256, 256, 3)
    # A second run finds everything in place and fetches nothing (the server could be gone).
    offline = PRNetAssets(checkpoint_data_url="http://127.0.0.1:9/none", data_url="http://127.0.0.1:9")
    assert download_prnet(folder, assets=offline, progress=False) == folder
    assert not list(folder.rglob("*.part"))


def test_corrupted_checkpoint_gives_sha_error_and_leaves_nothing(
    upstream: tuple[str, Path, PRNetAssets], tmp_path: Path
) -> None:
    _, root, assets = upstream
    data = root / "drive" / "data"
    corrupted = bytearray(data.read_bytes())
    corrupted[1000] ^= 0xFF
    data.write_bytes(bytes(corrupted))
    folder = tmp_path / "cache" / "prnet"
    with pytest.raises(ModelUnavailable) as caught:
        download_prnet(folder, assets=assets, progress=False)
    assert "failed its sha256 check" in caught.value.user_message
    assert not (folder / "tf" / f"{CHECKPOINT_NAME}.data-00000-of-00001").exists()
    assert not list(folder.rglob("*.part"))
    assert not (folder / "model.safetensors").exists()


def test_html_page_and_missing_server_are_clear(upstream: tuple[str, Path, PRNetAssets], tmp_path: Path) -> None:
    base, root, assets = upstream
    (root / "drive" / "page.html").write_text("<html>quota exceeded</html>", encoding="utf-8")
    html = PRNetAssets(**{**assets.__dict__, "checkpoint_data_url": f"{base}/drive/page.html"})
    with pytest.raises(ModelUnavailable, match="returned a web page instead of the file"):
        download_prnet(tmp_path / "a", assets=html, progress=False)
    gone = PRNetAssets(data_url="http://127.0.0.1:9")
    with pytest.raises(ModelUnavailable, match=r"Could not download face_ind\.txt"):
        download_prnet(tmp_path / "b", assets=gone, progress=False)
    assert not [p for p in (tmp_path / "b").rglob("*") if p.is_file()]


@pytest.mark.parametrize("name", ["face_ind.txt", "triangles.txt"])
def test_uv_files_that_contradict_the_mask_are_refused(shared_dir: Path, tmp_path: Path, name: str) -> None:
    """A file with the right length but rows out of order (a bad edit or a mixed-up release)."""
    from t2f.stages.prnet.assets import check_uv_rules

    uv_dir = tmp_path / "uv-data"
    shutil.copytree(shared_dir / "prnet" / "uv-data", uv_dir)
    check_uv_rules(uv_dir)  # the real files pass
    lines = (uv_dir / name).read_text().splitlines()
    lines[0], lines[1] = lines[1], lines[0]
    (uv_dir / name).write_text("\n".join(lines) + "\n")
    with pytest.raises(ModelUnavailable) as caught:
        check_uv_rules(uv_dir)
    assert caught.value.user_message == (
        f"PRNet's {name} does not follow from uv_face_mask.png; the UV data is damaged."
    )
