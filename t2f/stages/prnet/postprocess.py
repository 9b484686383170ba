"""PRNet post-processing: crops, position maps, and the face mesh built from them.

Plain functions of numpy arrays, vectorised (no loops over vertices or pixels). Coordinates are
image pixels with x to the right (column), y down (row) and z towards the camera, in the frame of
the image the face was cropped from, unless stated otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.transform import ProjectiveTransform, warp

from t2f.faces import UV_SIZE, FaceCrop, FaceMesh
from t2f.stages.prnet.texture import seen_texture, vertex_trust
from t2f.stages.prnet.uv import UVData

CROP_SIZE = 256


def crop_transform(center_xy: np.ndarray, side: float) -> np.ndarray:
    """(3, 3) matrix mapping the square of ``side`` pixels around ``center_xy`` onto 0..255.

    Same as upstream's ``estimate_transform('similarity', ...)`` from the square's top-left,
    bottom-left and top-right corners to (0, 0), (0, 255) and (255, 0): a pure scale plus shift.
    """
    if side <= 0:
        raise ValueError(f"crop side must be positive, got {side}")
    scale = (CROP_SIZE - 1) / side
    left, top = center_xy[0] - side / 2, center_xy[1] - side / 2
    return np.array([[scale, 0.0, -scale * left], [0.0, scale, -scale * top], [0.0, 0.0, 1.0]])


def crop_face(image: np.ndarray, center_xy: np.ndarray, side: float) -> FaceCrop:
    """Cut PRNet's 256x256 input from ``image`` (H, W, 3) uint8: bilinear, zero outside the image."""
    center = np.asarray(center_xy, dtype=np.float64)
    tform = crop_transform(center, side)
    pixels = image.astype(np.float32) / 255.0
    crop = warp(
        pixels,
        ProjectiveTransform(np.linalg.inv(tform)),
        output_shape=(CROP_SIZE, CROP_SIZE),
        order=1,
        mode="constant",
        cval=0.0,
        preserve_range=True,
    )
    return FaceCrop(image=crop.astype(np.float32), tform=tform, center_xy=center, side=float(side))


def crop_from_landmarks(image: np.ndarray, landmarks_xy: np.ndarray) -> FaceCrop:
    """PRNet's rule for caller-given landmarks (N, 2): their box, no shift, side int(1.6 * size)."""
    low, high = landmarks_xy[:, :2].min(axis=0), landmarks_xy[:, :2].max(axis=0)
    size = ((high[0] - low[0]) + (high[1] - low[1])) / 2
    return crop_face(image, (low + high) / 2, float(int(size * 1.6)))


def crop_whole_image(image: np.ndarray) -> FaceCrop:
    """Treat the whole (square-padded) image as the face crop: a plain resize for a square image."""
    h, w = image.shape[:2]
    return crop_face(image, np.array([(w - 1) / 2, (h - 1) / 2]), float(max(h, w) - 1))


def restore_position_map(raw: np.ndarray, tform: np.ndarray, *, max_pos: float = CROP_SIZE * 1.1) -> np.ndarray:
    """Network output to a position map in source-image pixels.

    Parameters
    ----------
    raw : (256, 256, 3) float32 network output in [0, 1].
    tform : (3, 3) the crop's image-to-crop transform.

    Returns
    -------
    pos : (256, 256, 3) float32; x and y through the inverse crop transform, z divided by its scale.
    """
    crop_pos = raw.reshape(-1, 3).astype(np.float64) * max_pos
    homogeneous = np.column_stack([crop_pos[:, :2], np.ones(len(crop_pos))])
    xy = homogeneous @ np.linalg.inv(tform).T
    z = crop_pos[:, 2] / tform[0, 0]
    return np.column_stack([xy[:, :2], z]).reshape(raw.shape).astype(np.float32)


def face_vertices(pos: np.ndarray, face_ind: np.ndarray) -> np.ndarray:
    """(V, 3) vertices: the position map's pixels at ``face_ind`` (row-major)."""
    return pos.reshape(-1, 3)[face_ind]


def face_landmarks(pos: np.ndarray, kpt_ind: np.ndarray) -> np.ndarray:
    """(68, 3) iBUG-68 landmarks: ``pos[v, u]`` for each (u, v) column of ``kpt_ind`` (2, 68)."""
    return pos[kpt_ind[1], kpt_ind[0]]


def vertex_colors(image: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """(V, 3) uint8 colours: the pixel nearest each vertex, clamped to the image (input not modified)."""
    h, w = image.shape[:2]
    x = np.round(np.clip(vertices[:, 0], 0, w - 1)).astype(np.intp)
    y = np.round(np.clip(vertices[:, 1], 0, h - 1)).astype(np.intp)
    return image[y, x, :3]


def uv_texture(image: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(256, 256, 3) uint8 UV texture: the image sampled bilinearly at every position-map (x, y), 0 outside."""
    coords = np.stack([pos[..., 1], pos[..., 0]])  # (row, col) for map_coordinates
    channels = [
        ndimage.map_coordinates(image[..., c].astype(np.float32), coords, order=1, mode="constant", cval=0.0)
        for c in range(3)
    ]
    return np.clip(np.round(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


def similarity_to_canonical(vertices: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """(3, 4) P = [s R | t] aligning ``canonical`` to ``vertices`` as upstream's ``estimate_pose`` does.

    Centre both, SVD of the cross-covariance, fix a reflection, scale = ratio of RMS radii; the
    translation is the plain difference of the means (an upstream quirk kept for parity).
    """
    mean_v, mean_c = vertices.mean(axis=0), canonical.mean(axis=0)
    v0, c0 = (vertices - mean_v).T, (canonical - mean_c).T
    u, _, vt = np.linalg.svd(v0 @ c0.T)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        rotation[:, 2] *= -1
    scale = np.sqrt(np.mean(np.sum(v0**2, axis=0))) / np.sqrt(np.mean(np.sum(c0**2, axis=0)))
    return np.column_stack([scale * rotation, mean_c - mean_v])


def head_pose(vertices: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in radians from the similarity between the canonical and the predicted face.

    All NaN when the geometry is degenerate (e.g. every vertex at one point), where no pose exists.
    """
    p = similarity_to_canonical(vertices.astype(np.float64), canonical)
    norms = np.linalg.norm(p[:2, :3], axis=1)
    if not np.all(np.isfinite(p)) or norms.min() < 1e-12:
        return np.full(3, np.nan)
    r1, r2 = p[0, :3] / norms[0], p[1, :3] / norms[1]
    r = np.stack([r1, r2, np.cross(r1, r2)])
    yaw = np.arcsin(np.clip(r[2, 0], -1.0, 1.0))
    cos_yaw = np.cos(yaw)
    pitch = np.arctan2(r[2, 1] / cos_yaw, r[2, 2] / cos_yaw)
    roll = np.arctan2(r[1, 0] / cos_yaw, r[0, 0] / cos_yaw)
    return np.array([yaw, pitch, roll])


def build_face_mesh(image: np.ndarray, pos: np.ndarray, uv_data: UVData) -> FaceMesh:
    """Everything a user gets from one image-space position map (256, 256, 3) and its image (H, W, 3) uint8.

    Colours and texture are the photo's where the camera saw the face, and borrowed from the mirrored
    side where it did not (:mod:`t2f.stages.prnet.texture`).
    """
    if pos.shape != (UV_SIZE, UV_SIZE, 3):
        raise ValueError(f"position map must be ({UV_SIZE}, {UV_SIZE}, 3), got {pos.shape}")
    vertices = face_vertices(pos, uv_data.face_ind)
    trust = vertex_trust(vertices, uv_data.triangles, uv_data.uv_coords, (int(image.shape[0]), int(image.shape[1])))
    texture, colors = seen_texture(uv_texture(image, pos), vertex_colors(image, vertices), trust, uv_data.face_ind)
    return FaceMesh(
        vertices=vertices.astype(np.float32),
        triangles=uv_data.triangles,
        colors=colors,
        uv=uv_data.uv_coords,
        texture=texture,
        landmarks=face_landmarks(pos, uv_data.kpt_ind).astype(np.float32),
        pose=head_pose(vertices, uv_data.canonical_vertices),
        image_shape=(int(image.shape[0]), int(image.shape[1])),
    )
