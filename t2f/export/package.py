"""A face's result files: the bytes of every output, by file name. Pure: nothing is written here."""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from t2f.export.glb import glb_bytes
from t2f.export.obj import obj_bytes, photo_obj_files, textured_obj_files
from t2f.export.parallel import run_parts
from t2f.export.preview import preview_strip
from t2f.export.turntable import turntable_gif
from t2f.faces import FaceMesh, FaceResult
from t2f.files.outputs import IMAGE_FILE, PREVIEW_FILE, TURNTABLE_FILE, jpeg_bytes, png_bytes
from t2f.timing import timed

if TYPE_CHECKING:
    from t2f.export.render_torch import ViewRenderer

# "photo" (the mesh where the photo saw it, beside the textured set) is for the CLI; a chat gets one of the others.
MESH_FORMATS = ("obj", "textured", "photo", "glb")

FilePart = Callable[[dict[str, float]], dict[str, bytes]]  # adds its seconds to the dict it is given


def result_files(
    result: FaceResult,
    timings: dict[str, float] | None = None,
    *,
    outputs: tuple[str, ...] = MESH_FORMATS,
    pool: Executor | None = None,
    renderer: ViewRenderer | None = None,
    show_image: bool = True,
) -> dict[str, bytes]:
    """The output files of a face, by name; export times are added to ``timings`` when given.

    Always ``preview.jpg`` and ``turntable.gif``, and ``image.png`` with ``show_image`` (without it, the
    preview strip leaves the image out too: a member's photo is theirs); ``face.obj`` (vertex colours) for "obj",
    ``face_textured.obj/.mtl/.png`` for "textured", ``face_textured_photo.obj`` for "photo", ``face.glb`` for
    "glb". With a ``pool`` the files
    (and the turntable's frames) are made on its threads as well as this one; the bytes are the same.
    With a ``renderer`` (:mod:`t2f.export.render_torch`, a GPU) the preview's and turntable's views are drawn there.
    """

    def image(times: dict[str, float]) -> dict[str, bytes]:
        return {IMAGE_FILE: png_bytes(result.image)}

    def preview(times: dict[str, float]) -> dict[str, bytes]:
        with timed(times, "preview"):
            strip = preview_strip(result.image if show_image else None, result.mesh, renderer=renderer)
            return {PREVIEW_FILE: jpeg_bytes(strip)}

    def turntable(times: dict[str, float]) -> dict[str, bytes]:
        with timed(times, "turntable"):
            return {TURNTABLE_FILE: turntable_gif(result.mesh, pool=pool, renderer=renderer)}

    # the turntable starts first (the longest part: the calling thread runs it), the files keep their order
    pictures = [image] if show_image else []
    drawn, *others = _run_file_parts([turntable, *pictures, *_mesh_parts(result.mesh, outputs), preview], timings, pool)
    return _merged([*others, drawn])


def mesh_files(
    mesh: FaceMesh,
    timings: dict[str, float] | None = None,
    *,
    outputs: tuple[str, ...] = MESH_FORMATS,
    pool: Executor | None = None,
) -> dict[str, bytes]:
    """The mesh files alone (no pictures): what a lighter mesh replaces when the files do not fit."""
    return _merged(_run_file_parts(_mesh_parts(mesh, outputs), timings, pool))


def _mesh_parts(mesh: FaceMesh, outputs: tuple[str, ...]) -> list[FilePart]:
    def obj(times: dict[str, float]) -> dict[str, bytes]:
        with timed(times, "export_obj"):
            return {"face.obj": obj_bytes(mesh)}

    def textured(times: dict[str, float]) -> dict[str, bytes]:
        with timed(times, "export_obj"):
            return textured_obj_files(mesh, stem="face_textured")

    def photo(times: dict[str, float]) -> dict[str, bytes]:
        with timed(times, "export_obj"):
            return photo_obj_files(mesh, stem="face_textured")

    def glb(times: dict[str, float]) -> dict[str, bytes]:
        with timed(times, "export_glb"):
            return {"face.glb": glb_bytes(mesh)}

    wanted = {"obj": obj, "textured": textured, "photo": photo, "glb": glb}
    return [part for name, part in wanted.items() if name in outputs]


def _run_file_parts(
    parts: list[FilePart], timings: dict[str, float] | None, pool: Executor | None
) -> list[dict[str, bytes]]:
    """Each part's files; each part times itself into a dict of its own (parts may run at once), and
    the seconds are then summed into ``timings`` (seconds spent per stage, not the wall time)."""
    own_times: list[dict[str, float]] = [{} for _ in parts]
    made = run_parts([functools.partial(part, times) for part, times in zip(parts, own_times, strict=True)], pool)
    if timings is not None:
        for times in own_times:
            for stage, seconds in times.items():
                timings[stage] = timings.get(stage, 0.0) + seconds
    return made


def _merged(made: list[dict[str, bytes]]) -> dict[str, bytes]:
    return {name: data for files in made for name, data in files.items()}
