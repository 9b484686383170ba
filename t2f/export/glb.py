"""Binary glTF 2.0 (GLB) for web viewers, written directly from the arrays (no scene library).

What viewers need to draw a face well, each required or defined by the glTF 2.0 specification:

- ``NORMAL``: smooth per-vertex normals (without them viewers shade flat, faceted triangles);
- a PBR material with ``metallicFactor`` 0 and ``roughnessFactor`` 0.8: glTF's default material
  is fully metallic, which viewers draw dark without an environment map;
- ``COLOR_0`` as linear float RGB: the spec defines vertex colours as linear, so the sRGB bytes
  sampled from the picture are converted with the sRGB transfer function;
- optionally the 256 x 256 UV texture as ``baseColorTexture`` (``TEXCOORD_0``; glTF's UV origin is
  the image's top-left corner, like ``FaceMesh.uv``, so v is not flipped as in OBJ). The texture
  then replaces the vertex colours, which glTF would otherwise multiply with it.

The mesh is in the files' frame (:class:`t2f.faces.FrontalFrame`, as the OBJ): the head's pose
undone so it faces the viewer (+z) upright (y up), centred on its bounding box and 1 unit tall, so
viewers frame it and open it from the front whatever way the head turned in the picture. The Khronos
glTF validator reports no errors for it (tests/test_export.py).
"""

from __future__ import annotations

import json
import struct

import numpy as np

from t2f.export.obj import file_vertices
from t2f.faces import FaceMesh
from t2f.files.outputs import png_bytes
from t2f.zbuffer import vertex_normals

ROUGHNESS = 0.8  # a matte skin; 1.0 looks chalky in viewers with an environment light
# glTF component types and buffer-view targets (glTF 2.0 spec, "Accessors" and "Buffer Views").
FLOAT, UNSIGNED_INT = 5126, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963


def srgb_to_linear(colors: np.ndarray) -> np.ndarray:
    """(N, C) float32 linear values in [0, 1] of sRGB ``colors`` (N, C) uint8 (IEC 61966-2-1)."""
    c = colors.astype(np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def smooth_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) float32 unit normals, area-weighted over the adjacent triangles (counter-clockwise fronts).

    A vertex no triangle uses (PRNet's vertex 0) gets +z, since the validator requires unit normals.
    """
    normals = vertex_normals(vertices, triangles)
    unused = np.linalg.norm(normals, axis=1) < 0.5  # zero-length: no adjacent triangle with an area
    normals[unused] = (0.0, 0.0, 1.0)
    return normals


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def glb_bytes(mesh: FaceMesh, *, textured: bool = False) -> bytes:
    """GLB of ``mesh``: positions, normals, triangles, a matte PBR material and vertex colours (linear).

    With ``textured``, the UV texture is embedded as a PNG and used as the base colour instead of
    the vertex colours. Pure: returns the file's bytes.
    """
    vertices = file_vertices(mesh).astype(np.float32)
    triangles = np.ascontiguousarray(mesh.triangles[:, ::-1], dtype=np.uint32)  # y flipped: reverse to stay CCW
    attributes = {"POSITION": vertices, "NORMAL": smooth_normals(vertices, triangles)}
    if textured:
        attributes["TEXCOORD_0"] = mesh.uv.astype(np.float32)
    else:
        attributes["COLOR_0"] = srgb_to_linear(mesh.colors)
    blobs, views, accessors = [], [], []
    offset = 0
    for index, (name, array) in enumerate([*attributes.items(), ("indices", triangles.reshape(-1))]):
        data = np.ascontiguousarray(array).tobytes()
        target = ELEMENT_ARRAY_BUFFER if name == "indices" else ARRAY_BUFFER
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data), "target": target})
        accessor: dict[str, object] = {
            "bufferView": index,
            "componentType": UNSIGNED_INT if name == "indices" else FLOAT,
            "count": int(array.shape[0]),
            "type": "SCALAR" if array.ndim == 1 else f"VEC{array.shape[1]}",
        }
        if name == "POSITION":  # required by the spec for positions
            accessor["min"], accessor["max"] = vertices.min(axis=0).tolist(), vertices.max(axis=0).tolist()
        accessors.append(accessor)
        blobs.append(_pad(data, b"\0"))
        offset += len(blobs[-1])
    material: dict[str, object] = {"metallicFactor": 0.0, "roughnessFactor": ROUGHNESS}
    gltf: dict[str, object] = {}
    if textured:
        image = png_bytes(mesh.texture)
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(image)})
        blobs.append(_pad(image, b"\0"))
        offset += len(blobs[-1])
        material["baseColorTexture"] = {"index": 0, "texCoord": 0}
        gltf["images"] = [{"bufferView": len(views) - 1, "mimeType": "image/png"}]
        # Linear filtering, clamped: the texture is black outside the face, so it must not wrap around.
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9729, "wrapS": 33071, "wrapT": 33071}]
        gltf["textures"] = [{"sampler": 0, "source": 0}]
    primitive = {
        "attributes": {name: index for index, name in enumerate(attributes)},
        "indices": len(attributes),
        "material": 0,
        "mode": 4,  # triangles
    }
    gltf = {
        "asset": {"version": "2.0", "generator": "t2f"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "face"}],
        "meshes": [{"name": "face", "primitives": [primitive]}],
        "materials": [{"name": "skin", "pbrMetallicRoughness": material, "doubleSided": False}],
        "buffers": [{"byteLength": offset}],
        "bufferViews": views,
        "accessors": accessors,
        **gltf,
    }
    json_chunk = _pad(json.dumps(gltf, separators=(",", ":")).encode("utf-8"), b" ")
    binary = b"".join(blobs)
    total = 12 + 8 + len(json_chunk) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(json_chunk), b"JSON"),
            json_chunk,
            struct.pack("<I4s", len(binary), b"BIN\0"),
            binary,
        ]
    )
