"""Wavefront OBJ for a :class:`~t2f.stages.prnet.postprocess.FaceMesh`.

PRNet's demo conventions: y is flipped (h - 1 - y) so the face stands upright in viewers, and each
triangle's corners are reversed so front faces are counter-clockwise seen from +z, the camera.
Numbers are formatted by :mod:`t2f.export.text`, a whole table at a time.
"""

from __future__ import annotations

import numpy as np

from t2f.export.text import format_table
from t2f.faces import FaceMesh
from t2f.files.outputs import png_bytes

TEXTURE_MATERIAL = "FaceTexture"
DIGITS = 3  # 1/1000 of a source-image pixel; colours still round-trip exactly to 8 bits


def upright_vertices(mesh: FaceMesh) -> np.ndarray:
    """(V, 3) float64 vertices with y flipped to point up: (x, h - 1 - y, z)."""
    flipped = mesh.vertices.astype(np.float64)
    flipped[:, 1] = mesh.image_shape[0] - 1 - flipped[:, 1]
    return flipped


def obj_faces(mesh: FaceMesh) -> np.ndarray:
    """(F, 3) 1-based indices with the corner order reversed (front faces towards the camera)."""
    return mesh.triangles[:, ::-1].astype(np.int64) + 1


def obj_bytes(mesh: FaceMesh) -> bytes:
    """ASCII OBJ with per-vertex colours (``v x y z r g b``, colours in [0, 1]) and faces; no normals or UVs."""
    vertex_table = np.column_stack([upright_vertices(mesh), mesh.colors / 255.0])
    return (
        b"# t2f face mesh (PRNet), vertex colours\n"
        + format_table("v", vertex_table, digits=DIGITS)
        + format_table("f", obj_faces(mesh))
    )


def textured_obj_files(mesh: FaceMesh, *, stem: str = "face_textured") -> dict[str, bytes]:
    """A textured OBJ, its MTL and the texture PNG, referring to each other by relative names.

    Returns
    -------
    files : ``{stem}.obj``, ``{stem}.mtl`` and ``{stem}.png`` mapped to their bytes.
    """
    corners = np.repeat(obj_faces(mesh), 2, axis=1)  # a/a b/b c/c: vertex and UV share indices
    uv = np.column_stack([mesh.uv[:, 0], 1.0 - mesh.uv[:, 1]])  # OBJ's v axis points up
    obj = (
        f"# t2f face mesh (PRNet), UV textured\nmtllib {stem}.mtl\n".encode("ascii")
        + format_table("v", upright_vertices(mesh), digits=DIGITS)
        + format_table("vt", uv, digits=6)
        + f"usemtl {TEXTURE_MATERIAL}\n".encode("ascii")
        + format_table("f", corners, separator="/ / / ")
    )
    mtl = (
        f"newmtl {TEXTURE_MATERIAL}\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
        f"d 1.0\nillum 1\nmap_Kd {stem}.png\n"
    )
    return {f"{stem}.obj": obj, f"{stem}.mtl": mtl.encode("ascii"), f"{stem}.png": png_bytes(mesh.texture)}
