"""A face's result files: the bytes of every output, by file name. Pure: nothing is written here."""

from __future__ import annotations

from t2f.export.glb import glb_bytes
from t2f.export.obj import obj_bytes, textured_obj_files
from t2f.export.preview import preview_strip
from t2f.export.turntable import turntable_gif
from t2f.faces import FaceMesh, FaceResult
from t2f.files.outputs import IMAGE_FILE, PREVIEW_FILE, TURNTABLE_FILE, jpeg_bytes, png_bytes
from t2f.timing import timed

MESH_FORMATS = ("obj", "textured", "glb")


def result_files(
    result: FaceResult,
    timings: dict[str, float] | None = None,
    *,
    outputs: tuple[str, ...] = MESH_FORMATS,
) -> dict[str, bytes]:
    """The output files of a face, by name; export times are added to ``timings`` when given.

    Always ``image.png``, ``preview.jpg`` and ``turntable.gif``; ``face.obj`` (vertex colours) for "obj",
    ``face_textured.obj/.mtl/.png`` for "textured", ``face.glb`` for "glb".
    """
    stage_times = timings if timings is not None else {}
    files = {IMAGE_FILE: png_bytes(result.image), **mesh_files(result.mesh, stage_times, outputs=outputs)}
    with timed(stage_times, "preview"):
        files[PREVIEW_FILE] = jpeg_bytes(preview_strip(result.image, result.mesh))
    with timed(stage_times, "turntable"):
        files[TURNTABLE_FILE] = turntable_gif(result.mesh)
    return files


def mesh_files(
    mesh: FaceMesh, timings: dict[str, float] | None = None, *, outputs: tuple[str, ...] = MESH_FORMATS
) -> dict[str, bytes]:
    """The mesh files alone (no pictures): what a lighter mesh replaces when the files do not fit."""
    stage_times = timings if timings is not None else {}
    files: dict[str, bytes] = {}
    with timed(stage_times, "export_obj"):
        if "obj" in outputs:
            files["face.obj"] = obj_bytes(mesh)
        if "textured" in outputs:
            files.update(textured_obj_files(mesh, stem="face_textured"))
    with timed(stage_times, "export_glb"):
        if "glb" in outputs:
            files["face.glb"] = glb_bytes(mesh)
    return files
