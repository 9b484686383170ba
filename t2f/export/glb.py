"""Binary glTF (GLB) for web viewers, through trimesh."""

from __future__ import annotations

import numpy as np
import trimesh

from t2f.export.obj import upright_vertices
from t2f.faces import FaceMesh


def glb_bytes(mesh: FaceMesh) -> bytes:
    """GLB with positions, triangles (front faces counter-clockwise towards +z) and vertex colours.

    The mesh is centred on its bounding box and scaled to about 1 unit tall so viewers frame it.
    """
    vertices = upright_vertices(mesh)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    vertices = (vertices - (low + high) / 2) / max(float(high[1] - low[1]), 1e-6)
    colors = np.column_stack([mesh.colors, np.full(len(mesh.colors), 255, np.uint8)])
    tm = trimesh.Trimesh(
        vertices=vertices.astype(np.float32), faces=mesh.triangles[:, ::-1], vertex_colors=colors, process=False
    )
    data = tm.export(file_type="glb")
    assert isinstance(data, bytes)  # trimesh returns bytes for binary formats
    return data
