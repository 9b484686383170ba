"""The visibility-aware texture (t2f/stages/prnet/texture.py): PRNet's UV layout is mirror-symmetric, and
the hidden side of a turned head is filled from the seen side instead of copying what the photo shows there.

The turned heads are a real PRNet face (AFLW2000 image00050) drawn turned in its own texture on a
blotchy background (tests/mesh_fixtures.py), so which texels the picture shows is known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mesh_fixtures import reference_pos, turned_view

from t2f.faces import UV_SIZE
from t2f.stages.prnet.postprocess import build_face_mesh, uv_texture, vertex_colors
from t2f.stages.prnet.texture import seen_texture, vertex_trust
from t2f.stages.prnet.uv import UVData, load_mask
from t2f.zbuffer import vertex_normals

# iBUG-68 landmarks that mirror each other: jaw ends, brow ends, outer and inner eye corners, nostrils, mouth corners.
MIRROR_PAIRS = ((0, 16), (17, 26), (36, 45), (39, 42), (31, 35), (48, 54))


@pytest.fixture(scope="module")
def uv(shared_dir: Path) -> UVData:
    return UVData.load(shared_dir / "prnet" / "uv-data")


@pytest.fixture(scope="module")
def known(shared_dir: Path, uv: UVData) -> tuple[object, np.ndarray]:
    """(mesh, texture): the reference face and its texture as its nearly frontal photo shows it."""
    photo, pos = reference_pos(shared_dir)
    return build_face_mesh(photo, pos, uv), uv_texture(photo, pos)


def test_the_uv_layout_mirrors_column_u_onto_255_minus_u(shared_dir: Path, uv: UVData) -> None:
    mask = load_mask(shared_dir / "prnet" / "uv-data" / "uv_face_mask.png")
    assert (mask != mask[:, ::-1]).sum() < 0.001 * mask.sum()  # 38 of 43,867 texels differ
    for left, right in MIRROR_PAIRS:
        assert abs(uv.kpt_ind[0, left] + uv.kpt_ind[0, right] - (UV_SIZE - 1)) <= 1
        assert uv.kpt_ind[1, left] == uv.kpt_ind[1, right]
    # The canonical face: a texel and its mirror image sit at mirrored x, the same height and depth.
    grid = np.zeros((UV_SIZE * UV_SIZE, 3))
    grid[uv.face_ind] = uv.canonical_vertices
    grid = grid.reshape(UV_SIZE, UV_SIZE, 3)
    both = mask & mask[:, ::-1]
    mirrored = grid[:, ::-1]
    width = np.ptp(uv.canonical_vertices[:, 0])
    middle = (grid[..., 0] + mirrored[..., 0])[both] / 2  # the symmetry plane's x, texel by texel
    assert np.abs(middle - np.median(middle)).max() < 0.02 * width
    assert np.abs(grid[..., 1:] - mirrored[..., 1:])[both].max() < 0.02 * width
    assert np.abs(grid[..., 1:] - mirrored[..., 1:])[both].mean() < 0.002 * width


@pytest.mark.parametrize("yaw", [0.0, 50.0])
def test_trust_follows_what_the_picture_shows(known: tuple, uv: UVData, yaw: float) -> None:
    mesh, texture = known
    view = turned_view(mesh, texture, yaw)
    vertices = view.pos.reshape(-1, 3)[uv.face_ind]
    trust = vertex_trust(vertices, uv.triangles, uv.uv_coords, view.image.shape[:2])
    assert trust.dtype == np.float32 and trust.min() >= 0 and trust.max() <= 1
    facing = vertex_normals(vertices, uv.triangles)[:, 2] > 0.3
    assert (trust[view.seen & facing] == 1).mean() > 0.95  # seen and facing: believed (but on the silhouette)
    if yaw:  # (at 0 degrees the only unseen vertices are a few in the nostrils and a fold at the top edge)
        assert (~view.seen).mean() > 0.2  # a quarter of the face turned away
        assert (trust[~view.seen] == 0).mean() > 0.95  # not in the picture: not believed (but at its edge)


def test_a_turned_head_has_no_ghosts(known: tuple, uv: UVData) -> None:
    mesh, texture = known
    view = turned_view(mesh, texture, 50.0)
    truth = texture.reshape(-1, 3)[uv.face_ind].astype(float)
    believed = (
        vertex_trust(mesh.vertices, mesh.triangles, mesh.uv, mesh.image_shape) == 1
    )  # the reference photo saw these
    hidden, seen = ~view.seen & believed, view.seen & believed
    vertices = view.pos.reshape(-1, 3)[uv.face_ind]
    before_texture = uv_texture(view.image, view.pos).reshape(-1, 3)[uv.face_ind]
    before_colors = vertex_colors(view.image, vertices)
    after = build_face_mesh(view.image, view.pos, uv)
    after_texture = after.texture.reshape(-1, 3)[uv.face_ind]

    def error(colors: np.ndarray, where: np.ndarray) -> float:
        return float(np.abs(colors[where] - truth[where]).mean())

    # Upstream's sampling copies the near cheek, the nose and the background onto the hidden side.
    assert error(before_texture, hidden) > 30 and error(before_colors, hidden) > 30
    assert error(after_texture, hidden) < 0.5 * error(before_texture, hidden)
    assert error(after.colors, hidden) < 0.5 * error(before_colors, hidden)
    assert error(after_texture, seen) < error(before_texture, seen) + 1.0  # what was seen stays as seen
    # The vertex colours and the texture agree where they were borrowed.
    assert np.abs(after.colors[hidden].astype(int) - after_texture[hidden]).mean() < 2


def test_vertices_seen_well_keep_the_photos_pixel(known: tuple, uv: UVData) -> None:
    mesh, texture = known
    view = turned_view(mesh, texture, 30.0)
    vertices = view.pos.reshape(-1, 3)[uv.face_ind]
    photo_colors = vertex_colors(view.image, vertices)
    after = build_face_mesh(view.image, view.pos, uv)
    trusted = vertex_trust(vertices, uv.triangles, uv.uv_coords, view.image.shape[:2]) == 1
    kept = (after.colors == photo_colors).all(axis=1)
    assert kept[trusted].mean() > 0.8  # all but the blend at the seam
    assert not kept[~view.seen].any() or kept[~view.seen].mean() < 0.05


def test_geometry_without_a_seen_texel_keeps_the_samples(uv: UVData) -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (UV_SIZE, UV_SIZE, 3), dtype=np.uint8)
    colors = rng.integers(0, 256, (len(uv.face_ind), 3), dtype=np.uint8)
    flat = np.zeros((len(uv.face_ind), 3), np.float32)  # every vertex at one point: no normal, no pose
    trust = vertex_trust(flat, uv.triangles, uv.uv_coords, (64, 64))
    assert not trust.any()
    same_texture, same_colors = seen_texture(texture, colors, trust, uv.face_ind)
    assert same_texture is texture and same_colors is colors
    trace = np.zeros(len(uv.face_ind), np.float32)
    trace[100] = 0.01  # a trace of trust (random PRNet weights give such shapes): still nothing to borrow
    same_texture, same_colors = seen_texture(texture, colors, trace, uv.face_ind)
    assert same_texture is texture and same_colors is colors
