"""A face's colours from what the camera saw: hidden texels filled from the mirrored side, no ghosts.

PRNet gives every texel of its UV map a place in the photo, seen or not. Sampling the photo there
(upstream's texture and vertex colours) paints the side of a turned head that faced away with
whatever the photo shows at those pixels: the near cheek, a second eye, the nose, the background.
Here each vertex (one texel each) gets a trust in [0, 1]:

- **facing**: its normal's z (towards the camera), ramped from 0 at grazing angles to 1;
- **not occluded**: its depth against a z-buffer of the face drawn from the camera (every second UV
  row and column, :func:`t2f.zbuffer.rasterize`), with a tolerance for the surface's own slope
  between pixel centres;
- **not on the silhouette**: there a photo's pixel is part background;
- **inside the photo**: a texel outside it samples black.

The trust map is smoothed in UV space and pulled inside the seen region, so the switch between the
face's own colours and borrowed ones is a ramp of a few texels, not an edge. PRNet's UV layout is
left-right symmetric about the map's vertical centre line (texel column u mirrors column 255 - u;
``tests/test_texture.py`` checks it on the canonical face and the landmark pairs), so a hidden texel
takes its colour from its mirror image where that one was seen. Texels hidden on both sides take the
colour of the nearest trusted texel; texels outside the face get the nearest face colour for two
texels (what texture filtering at the mask's edge reads, so it never blends in black) and the face's
mean colour beyond. bench/texture_visibility.py measures the error on the hidden side before and after.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from t2f.faces import UV_SIZE, grid_triangles
from t2f.zbuffer import raster_depth, rasterize, vertex_normals

ZBUFFER_SIZE = 256  # pixels across the face in the visibility z-buffer: about one per texel (finer finds no more)
ZBUFFER_STEP = 2  # the z-buffer's mesh: every second UV row and column (its chords lie within 0.1 px of the face)
FACING = (0.02, 0.2)  # normal z from which a texel is trusted at all, and fully (about 89 and 78 degrees)
DEPTH_SLACK_PX = 1.0  # z-buffer pixels of depth a seen vertex may lie behind the surface drawn near it
SEAM_TEXELS = 2.0  # Gaussian sigma of the trust map in UV space: the width of the blend at the seam
TRUSTED = 0.02  # total weight below which a texel counts as unseen on both sides
PAD_TEXELS = 2.0  # texels outside the face padded with its edge colour (what filtering at the edge reads)


def _coarse_grid(uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vertex ids (K,), triangles (F, 3) into them) of the UV grid's every ZBUFFER_STEP-th row and column."""
    cols, rows = np.round(uv * UV_SIZE).astype(np.int64).T
    keep = np.flatnonzero((rows % ZBUFFER_STEP == 0) & (cols % ZBUFFER_STEP == 0))
    ids = np.full((UV_SIZE // ZBUFFER_STEP + 1,) * 2, -1, dtype=np.int64)
    ids[rows[keep] // ZBUFFER_STEP, cols[keep] // ZBUFFER_STEP] = np.arange(keep.size)
    return keep, grid_triangles(ids)


def vertex_trust(
    vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray, image_shape: tuple[int, int]
) -> np.ndarray:
    """(V,) float32 in [0, 1]: how far each vertex's colour in the photo can be believed.

    Parameters
    ----------
    vertices : (V, 3) source-image pixels (x right, y down, z towards the camera).
    triangles : (F, 3) front faces counter-clockwise in the image (y down).
    uv : (V, 2) each vertex's place in the UV grid (``FaceMesh.uv``): the z-buffer is drawn from
        every second row and column of it, a quarter of the triangles for the same surface.
    image_shape : (height, width) of the photo.
    """
    vertices = vertices.astype(np.float64)
    normals = vertex_normals(vertices, triangles)
    facing = np.clip((normals[:, 2] - FACING[0]) / (FACING[1] - FACING[0]), 0.0, 1.0)
    low = vertices.min(axis=0)
    span = max(float(np.ptp(vertices[:, 0])), float(np.ptp(vertices[:, 1])), 1e-6)
    scale = (ZBUFFER_SIZE - 4) / span
    placed = ((vertices - low) * scale + [2.0, 2.0, 0.0]).astype(np.float32)  # the same scale on z
    coarse, coarse_triangles = _coarse_grid(uv)
    raster = rasterize(placed[coarse], coarse_triangles, ZBUFFER_SIZE, cull_back=True)
    depth = raster_depth(raster, placed[coarse], coarse_triangles)
    # The surface drawn at the four pixel centres around a seen vertex (each at most 1.41 px away) lies
    # within its slope times that distance of the vertex's depth; a vertex behind all four is occluded.
    col = np.clip(np.floor(placed[:, 0]).astype(np.int64), 0, ZBUFFER_SIZE - 2)[:, None] + [0, 1, 0, 1]
    row = np.clip(np.floor(placed[:, 1]).astype(np.int64), 0, ZBUFFER_SIZE - 2)[:, None] + [0, 0, 1, 1]
    around = depth[row, col]
    slope = np.hypot(normals[:, 0], normals[:, 1]) / np.maximum(normals[:, 2], 0.05)
    unoccluded = placed[:, 2] >= around.min(axis=1) - (DEPTH_SLACK_PX + 1.5 * slope)
    # On the silhouette (a pixel beside it shows nothing) a photo's pixel mixes in the background.
    inner = np.isfinite(around).all(axis=1)
    height, width = image_shape
    inside = (
        (vertices[:, 0] >= 0) & (vertices[:, 0] <= width - 1) & (vertices[:, 1] >= 0) & (vertices[:, 1] <= height - 1)
    )
    return (facing * (unoccluded & inner & inside)).astype(np.float32)


def _smooth_in_mask(values: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W, ...) ``values`` blurred with a Gaussian over the ``mask`` (H, W) texels only (normalised convolution)."""
    weight = ndimage.gaussian_filter(mask.astype(np.float32), sigma, mode="constant")
    spread = values * mask.reshape(mask.shape + (1,) * (values.ndim - 2))
    blurred = ndimage.gaussian_filter(spread, (sigma, sigma, *([0] * (values.ndim - 2))), mode="constant")
    return blurred / np.maximum(weight, 1e-6).reshape(weight.shape + (1,) * (values.ndim - 2))


def seen_texture(
    texture: np.ndarray, colors: np.ndarray, trust: np.ndarray, face_ind: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The texture and vertex colours with every texel the photo did not show borrowed from its mirror image.

    Parameters
    ----------
    texture : (256, 256, 3) uint8 the photo sampled at every texel (upstream's texture).
    colors : (V, 3) uint8 the photo's pixel nearest each vertex (upstream's vertex colours).
    trust : (V,) float32 :func:`vertex_trust`.
    face_ind : (V,) flat texel of each vertex (row-major).

    Returns
    -------
    texture : (256, 256, 3) uint8; colors : (V, 3) uint8, unchanged where the vertex was fully trusted.
    """
    if not np.any(trust > 0):  # nothing was seen (degenerate geometry): nothing to borrow from
        return texture, colors
    mask = np.zeros((UV_SIZE, UV_SIZE), bool)
    mask.reshape(-1)[face_ind] = True
    seen = np.zeros((UV_SIZE, UV_SIZE), np.float32)
    seen.reshape(-1)[face_ind] = trust
    # Smoothed, then pulled inside the seen region: 0 at the seen region's edge, 1 a few texels in.
    own = seen * np.clip(2.0 * _smooth_in_mask(seen[..., None], mask, SEAM_TEXELS)[..., 0] - 1.0, 0.0, 1.0)
    mirrored_own = own[:, ::-1] * mask  # column u mirrors column 255 - u
    own_weight = own[..., None]
    mirror_weight = ((1.0 - own) * mirrored_own)[..., None]
    total = own_weight + mirror_weight
    pixels = texture.astype(np.float32)
    blended = (own_weight * pixels + mirror_weight * pixels[:, ::-1]) / np.maximum(total, 1e-6)
    known = (total[..., 0] > TRUSTED) & mask
    if not known.any():  # only traces of trust (broken geometry): too little to borrow from
        return texture, colors
    # Texels unseen on both sides take the nearest trusted texel's colour, softened so no streaks show;
    # outside the face, a band of PAD_TEXELS gets the nearest face colour and the rest the face's mean.
    distance, nearest = ndimage.distance_transform_edt(~known, return_indices=True)
    filled = blended[nearest[0], nearest[1]]
    unseen = mask & ~known
    softened = _smooth_in_mask(filled, mask, SEAM_TEXELS)
    clean = np.where(unseen[..., None], softened, filled)
    far_outside = ~mask & (distance > PAD_TEXELS)
    clean[far_outside] = blended[known].mean(axis=0)
    clean_texture = np.clip(np.round(clean), 0, 255).astype(np.uint8)
    own_vertex = own.reshape(-1)[face_ind][:, None]
    clean_colors = own_vertex * colors + (1.0 - own_vertex) * clean.reshape(-1, 3)[face_ind]
    return clean_texture, np.clip(np.round(clean_colors), 0, 255).astype(np.uint8)
