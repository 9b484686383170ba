from __future__ import annotations

import io
import zipfile
from pathlib import Path

from mesh_fixtures import reference_mesh

from t2f.export.obj import obj_bytes
from t2f.faces import decimate
from t2f.serve.jobs import UploadBudget
from t2f.serve.uploads import DROPPED, SIMPLIFIED, ZIPPED, fit_for_upload

TOTAL = 25 * 1024 * 1024


def per_file(limit: int) -> UploadBudget:
    return UploadBudget(per_file=limit, total=TOTAL)


def test_fitting_zips_then_simplifies_then_drops(shared_dir: Path) -> None:
    _, mesh = reference_mesh(shared_dir)
    files = {"preview.jpg": b"p" * 1000, "face.obj": obj_bytes(mesh)}
    size = len(files["face.obj"])
    same, note = fit_for_upload(files, budget=per_file(size + 1))
    assert same is files and note is None

    zipped, note = fit_for_upload(files, budget=per_file(size // 2))
    assert note == ZIPPED and set(zipped) == {"preview.jpg", "face.zip"}
    with zipfile.ZipFile(io.BytesIO(zipped["face.zip"])) as archive:
        assert archive.read("face.obj") == files["face.obj"]

    lighter = decimate(mesh)
    assert 0.2 < len(lighter.vertices) / len(mesh.vertices) < 0.3
    limit = len(zipped["face.zip"]) - 1  # the zipped full mesh no longer fits; the simplified one does
    simplified, note = fit_for_upload(files, budget=per_file(limit), lighter=lambda: {"face.obj": obj_bytes(lighter)})
    assert note == SIMPLIFIED and set(simplified) == {"preview.jpg", "face.obj"}
    assert len(simplified["face.obj"]) <= limit

    dropped, note = fit_for_upload(files, budget=per_file(5000), lighter=lambda: {"face.obj": obj_bytes(lighter)})
    assert note == DROPPED and dropped == {"preview.jpg": files["preview.jpg"]}


def test_the_lighter_mesh_is_made_only_when_the_files_do_not_fit() -> None:
    made: list[str] = []

    def lighter() -> dict[str, bytes]:
        made.append("lighter")
        return {"face.obj": b"v 0 0 0\n"}

    files = {"preview.jpg": b"p" * 10, "face.obj": b"o" * 100}
    fit_for_upload(files, budget=per_file(1000), lighter=lighter)
    assert made == []
    fit_for_upload(files, budget=UploadBudget(per_file=1000, total=50), lighter=lighter)  # all files together too big
    assert made == ["lighter"]
