"""Wavefront OBJ for a :class:`~t2f.faces.FaceMesh`.

The files hold the head as :class:`~t2f.faces.FrontalFrame` places it, the same coordinates as the
GLB: its pose undone (upright, facing +z), centred on its bounding box, y up, and 1 unit = the face's
height. Each triangle's corners are reversed (the y axis turned up is a reflection), so front faces are
counter-clockwise seen from +z, the viewer. :func:`photo_obj_files` writes the mesh where the photo saw
it (``<stem>_photo.obj``: source-image pixels, x right, y up as h - 1 - y, PRNet's demo convention),
for whoever wants to lay it over the picture: the CLI writes it and the face page's zip holds it.
Numbers are formatted by :mod:`t2f.export.text`, a whole table at a time.
"""

from __future__ import annotations

import numpy as np

from t2f.export.text import format_columns, format_table
from t2f.faces import FaceMesh, frontal_frame
from t2f.files.outputs import png_bytes

TEXTURE_MATERIAL = "FaceTexture"
DIGITS = 5  # 1/100,000 of the face's height: about 1/400 of a source-image pixel for a 250-pixel face
PHOTO_DIGITS = 3  # 1/1000 of a source-image pixel
COLOUR_DIGITS = 3  # colours still round-trip exactly to 8 bits


def file_vertices(mesh: FaceMesh) -> np.ndarray:
    """(V, 3) float64 vertices in the files' frame (:func:`t2f.faces.frontal_frame`): frontal, y up, 1 unit tall."""
    return frontal_frame(mesh).to_file(mesh.vertices)


def photo_vertices(mesh: FaceMesh) -> np.ndarray:
    """(V, 3) float64 vertices where the photo saw them, y flipped to point up: (x, h - 1 - y, z), pixels."""
    flipped = mesh.vertices.astype(np.float64)
    flipped[:, 1] = mesh.image_shape[0] - 1 - flipped[:, 1]
    return flipped


def obj_faces(mesh: FaceMesh) -> np.ndarray:
    """(F, 3) 1-based indices with the corner order reversed (front faces towards the viewer, y up)."""
    return mesh.triangles[:, ::-1].astype(np.int64) + 1


def obj_bytes(mesh: FaceMesh) -> bytes:
    """ASCII OBJ with per-vertex colours (``v x y z r g b``, colours in [0, 1]) and faces; no normals or UVs."""
    return (
        b"# t2f face mesh (PRNet), vertex colours; frontal, y up, 1 unit = the face's height\n"
        + format_columns("v", [(file_vertices(mesh), DIGITS), (mesh.colors / 255.0, COLOUR_DIGITS)])
        + format_table("f", obj_faces(mesh))
    )


def _textured_obj(mesh: FaceMesh, stem: str, vertices: np.ndarray, digits: int, frame: str) -> bytes:
    corners = np.repeat(obj_faces(mesh), 2, axis=1)  # a/a b/b c/c: vertex and UV share indices
    uv = np.column_stack([mesh.uv[:, 0], 1.0 - mesh.uv[:, 1]])  # OBJ's v axis points up
    return (
        f"# t2f face mesh (PRNet), UV textured; {frame}\nmtllib {stem}.mtl\n".encode("ascii")
        + format_table("v", vertices, digits=digits)
        + format_table("vt", uv, digits=6)
        + f"usemtl {TEXTURE_MATERIAL}\n".encode("ascii")
        + format_table("f", corners, separator="/ / / ")
    )


def textured_obj_files(mesh: FaceMesh, *, stem: str = "face_textured") -> dict[str, bytes]:
    """A textured OBJ (frontal, as ``face.obj``), its MTL and the texture PNG, referring to each other by
    relative names.

    Returns
    -------
    files : ``{stem}.obj``, ``{stem}.mtl`` and ``{stem}.png`` mapped to their bytes.
    """
    mtl = (
        f"newmtl {TEXTURE_MATERIAL}\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
        f"d 1.0\nillum 1\nmap_Kd {stem}.png\n"
    )
    frame = "frontal, y up, 1 unit = the face's height"
    return {
        f"{stem}.obj": _textured_obj(mesh, stem, file_vertices(mesh), DIGITS, frame),
        f"{stem}.mtl": mtl.encode("ascii"),
        f"{stem}.png": png_bytes(mesh.texture),
    }


def photo_obj_files(mesh: FaceMesh, *, stem: str = "face_textured") -> dict[str, bytes]:
    """``{stem}_photo.obj``: the textured mesh where the photo saw it (source-image pixels, y up), using the
    material and texture of :func:`textured_obj_files` with the same ``stem``."""
    frame = "where the photo saw it: source-image pixels, y up"
    return {f"{stem}_photo.obj": _textured_obj(mesh, stem, photo_vertices(mesh), PHOTO_DIGITS, frame)}
