from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mesh_fixtures import REFERENCE_MESHES, reference_mesh, turned_mesh

from t2f.export.preview import VIEWS, coarse_mesh, preview_strip
from t2f.export.raster import (
    BACKGROUND,
    PANEL,
    draw_view,
    fit_to_panel,
    rasterize,
    shade,
    soften_edges,
    vertex_light,
    view_mesh,
)
from t2f.faces import frontal_points, pose_rotation
from t2f.stages.prnet.postprocess import similarity_to_canonical
from t2f.stages.prnet.uv import UVData


def canonical(shared_dir: Path) -> np.ndarray:
    return UVData.load(shared_dir / "prnet" / "uv-data").canonical_vertices


def test_rasterize_fills_a_square_and_keeps_the_nearest() -> None:
    # Two triangles covering a 10x10 square at depth 0, and one nearer triangle over part of it.
    vertices = np.array([[5, 5, 0], [15, 5, 0], [5, 15, 0], [15, 15, 0], [5, 5, 1], [15, 5, 1], [5, 15, 1]], float)
    triangles = np.array([[0, 1, 2], [1, 3, 2], [4, 5, 6]])
    raster = rasterize(vertices, triangles, 20)
    covered = raster.face >= 0
    assert covered[5:16, 5:16].all() and covered.sum() == 121
    assert raster.face[6, 6] == 2  # the nearer triangle wins where they overlap
    assert raster.face[14, 14] == 1
    np.testing.assert_allclose(raster.bary[covered].sum(axis=1), 1.0, atol=1e-5)


def test_rasterize_tests_pixel_centres_only() -> None:
    # A right triangle from (2.2, 2.2) to (4.8, 4.8): the centres (2, 2) and (5, 5) lie outside its box.
    small = np.array([[2.2, 2.2, 0], [4.8, 2.2, 0], [2.2, 4.8, 0]])
    covered = np.argwhere(rasterize(small, np.array([[0, 1, 2]]), 8).face == 0)
    assert {tuple(rc) for rc in covered} == {(3, 3), (3, 4), (4, 3)}  # (row, col); (4, 4) is past the diagonal
    # A sliver between two pixel centres covers nothing and is not an error.
    sliver = np.array([[2.2, 2.2, 0], [2.8, 2.3, 0], [2.3, 7.0, 0]])
    assert (rasterize(sliver, np.array([[0, 1, 2]]), 8).face == -1).all()


def test_shade_interpolates_per_vertex_light_and_colour() -> None:
    vertices = np.array([[0, 0, 0], [9, 0, 0], [0, 9, 0], [9, 9, 0]], float)
    triangles = np.array([[0, 1, 2], [1, 3, 2]])
    raster = rasterize(vertices, triangles, 10)
    clay = shade(raster, triangles, np.ones(4, np.float32), None)
    assert (clay[raster.face >= 0] == 205).all() and (clay[raster.face < 0] == [32, 34, 40]).all()
    # Light 0 on the left corners and 1 on the right ones: brightness rises from left to right.
    ramp = shade(raster, triangles, np.array([0, 1, 0, 1], np.float32), None)[:, :, 0].astype(int)
    assert ramp[5, 0] == round(205 * 0.25) and ramp[5, 9] == 205 and (np.diff(ramp[5]) >= 0).all()
    colors = np.array([[255, 0, 0]] * 4, np.uint8)
    red = shade(raster, triangles, np.ones(4, np.float32), colors)
    assert (red[raster.face >= 0] == [255, 0, 0]).all()


def test_preview_has_shading_in_every_panel(shared_dir: Path) -> None:
    image, mesh = reference_mesh(shared_dir)
    strip = preview_strip(image, mesh)
    assert strip.shape == (PANEL, 5 * PANEL, 3) and strip.dtype == np.uint8
    panels = [strip[:, i * PANEL : (i + 1) * PANEL] for i in range(5)]
    for panel in panels[1:]:
        lit = (np.abs(panel.astype(int) - [32, 34, 40]).sum(axis=2) > 30)[20:]  # below the label
        assert lit.mean() > 0.2, "a mesh panel is nearly empty"
        assert panel[20:][lit].std() > 10, "a mesh panel has no shading"
    from PIL import Image

    expected = np.asarray(Image.fromarray(image).resize((PANEL, PANEL), Image.BILINEAR))  # the sample is square
    assert np.abs(panels[0].astype(int) - expected).mean() < 10
    # No holes inside the front view's silhouette.
    grey = panels[1][20:].astype(int)
    rows = np.nonzero((np.abs(grey - [32, 34, 40]).sum(axis=2) > 30).any(axis=1))[0]
    middle = grey[rows[len(rows) // 2]]
    lit = np.nonzero(np.abs(middle - [32, 34, 40]).sum(axis=1) > 30)[0]
    assert (np.abs(middle[lit[0] : lit[-1]] - [32, 34, 40]).sum(axis=1) > 30).all()


def test_coarse_mesh_keeps_a_quarter_of_the_vertices(shared_dir: Path) -> None:
    _, mesh = reference_mesh(shared_dir)
    vertices, triangles, colors = coarse_mesh(mesh)
    assert len(vertices) == len(colors)
    assert 0.2 < len(vertices) / len(mesh.vertices) < 0.3
    assert triangles.max() < len(vertices) and len(triangles) > 1.8 * len(vertices)


def test_broken_geometry_renders_within_the_budget(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import t2f.zbuffer
    from t2f.export.raster import PREVIEW_LOD

    image, mesh = reference_mesh(shared_dir)
    scrambled = np.random.default_rng(0).uniform(0, 500, mesh.vertices.shape).astype(np.float32)
    broken = dataclasses.replace(mesh, vertices=scrambled)  # random-weight PRNet output looks like this
    strip = preview_strip(image, broken)
    assert strip.shape == (PANEL, 5 * PANEL, 3)
    # A real face is never cut short by the budget: every view equals an unlimited rasterisation.
    vertices, triangles, _ = coarse_mesh(mesh, PREVIEW_LOD)
    views = [fit_to_panel(vertices, yaw) for _, yaw in VIEWS]
    budgeted = [rasterize(placed, triangles, PANEL).face for placed in views]
    budget = t2f.zbuffer.CANDIDATE_BUDGET
    monkeypatch.setattr(t2f.zbuffer, "CANDIDATE_BUDGET", 10**12)
    for placed, face in zip(views, budgeted, strict=True):
        np.testing.assert_array_equal(rasterize(placed, triangles, PANEL).face, face)
    # A jittered face (triangles up to about 25 px) needs more tests than the budget allows: the
    # largest triangles are left out, and the smaller ones are still drawn.
    jittered = views[0] + np.random.default_rng(1).uniform(-12, 12, views[0].shape).astype(np.float32)
    unlimited = (rasterize(jittered, triangles, PANEL).face >= 0).sum()
    monkeypatch.setattr(t2f.zbuffer, "CANDIDATE_BUDGET", budget)
    drawn = (rasterize(jittered, triangles, PANEL).face >= 0).sum()
    assert 0 < drawn < unlimited


def nose_is_nearest(vertices: np.ndarray, nose: np.ndarray, height: float) -> bool:
    """Whether the vertex nearest the camera (largest z) is the nose tip ``nose`` (3,).

    Within 1% of the head's ``height`` in depth and 5% across: the saved meshes' own nearest
    point lies a few vertices along the nose's ridge from the landmark.
    """
    gap = vertices[np.argmax(vertices[:, 2])] - nose
    return bool(gap[2] < 0.01 * height and np.linalg.norm(gap[:2]) < 0.05 * height)


TURNS = [(55.0, 0.0), (-55.0, 0.0), (0.0, 40.0), (-55.0, 40.0)]  # (yaw, pitch) degrees, as heads in photos turn


@pytest.mark.parametrize("name", REFERENCE_MESHES)
@pytest.mark.parametrize(("yaw", "pitch"), TURNS)
def test_front_view_undoes_the_head_pose(shared_dir: Path, name: str, yaw: float, pitch: float) -> None:
    _, mesh = reference_mesh(shared_dir, name)
    turned = turned_mesh(shared_dir, mesh, yaw_deg=yaw, pitch_deg=pitch)
    # The rotation rebuilt from the pose angles is the one PRNet's similarity found.
    similarity = similarity_to_canonical(turned.vertices.astype(np.float64), canonical(shared_dir))
    np.testing.assert_allclose(
        pose_rotation(turned.pose), similarity[:, :3] / np.linalg.norm(similarity[0, :3]), atol=1e-6
    )
    height = float(np.ptp(mesh.vertices[:, 1]))
    # Without the pose undone, the point nearest the camera is not the nose tip (a cheek, the brow).
    assert not nose_is_nearest(turned.vertices, turned.landmarks[30], height)
    view = view_mesh(turned)
    placed = fit_to_panel(view.vertices, 0.0)
    raster = rasterize(placed, view.triangles, PANEL, cull_back=True)
    visible = np.unique(view.triangles[raster.face[raster.face >= 0]])
    nose = frontal_points(turned.landmarks, turned)[30]
    nose_vertex = np.argmin(np.linalg.norm(view.vertices - nose, axis=1))
    assert nose_is_nearest(view.vertices[visible], view.vertices[nose_vertex], height)
    assert nose_vertex in visible
    eyes = frontal_points(turned.landmarks[[36, 45]], turned)  # outer eye corners: level again
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.03 * height


@pytest.mark.parametrize(("yaw", "pitch"), TURNS)
def test_no_back_face_is_drawn_in_any_view(shared_dir: Path, yaw: float, pitch: float) -> None:
    _, mesh = reference_mesh(shared_dir)
    view = view_mesh(turned_mesh(shared_dir, mesh, yaw_deg=yaw, pitch_deg=pitch))
    for _, view_yaw in VIEWS:
        placed = fit_to_panel(view.vertices, view_yaw)
        corners = placed[view.triangles]
        towards_camera = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])[:, 2] > 0
        both_sides = rasterize(placed, view.triangles, PANEL).face
        assert (~towards_camera[both_sides[both_sides >= 0]]).sum() > 0  # the mask's inside would show
        culled = draw_view(view, view_yaw)[0].face
        assert towards_camera[culled[culled >= 0]].all()
        assert (culled >= 0).mean() > 0.2


def test_back_faces_are_unlit() -> None:
    normals = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0]], np.float32)
    light = vertex_light(normals)
    assert light[0] > 0.8 and light[1] == 0 and light[2] == 0  # the light comes from the upper left, in front


def test_soften_edges_blends_only_the_silhouette() -> None:
    covered = np.zeros((12, 12), bool)
    covered[3:9, 3:9] = True
    image = np.where(covered[..., None], np.uint8(200), BACKGROUND).astype(np.uint8)
    soft = soften_edges(image, covered)
    np.testing.assert_array_equal(soft[4:8, 4:8], image[4:8, 4:8])  # the inside is untouched
    np.testing.assert_array_equal(soft[:1], image[:1])  # far outside too
    edge = soft[6, 1:5, 0].astype(int)  # background, ramp out, ramp in, inside
    assert edge[0] == BACKGROUND[0] and BACKGROUND[0] < edge[1] < edge[2] < 200 and edge[3] == 200


def test_turntable_gif_loops_the_pose_normalised_head(shared_dir: Path) -> None:
    import io

    from PIL import Image

    from t2f.export.turntable import FRAME_MS, FRAMES, SWING_DEG, swing_yaws, turntable_gif

    _, mesh = reference_mesh(shared_dir)
    turned = turned_mesh(shared_dir, mesh, yaw_deg=55.0, pitch_deg=40.0)
    data = turntable_gif(turned)
    assert len(data) < 2_000_000
    gif = Image.open(io.BytesIO(data))
    assert gif.format == "GIF" and gif.size == (PANEL, PANEL) and gif.n_frames == FRAMES
    assert gif.info["loop"] == 0 and gif.info["duration"] == FRAME_MS
    frames = []
    for index in range(FRAMES):
        gif.seek(index)
        frames.append(np.asarray(gif.convert("RGB")).astype(int))
    yaws = swing_yaws()
    assert yaws[0] == 0 and yaws.max() == pytest.approx(SWING_DEG) and yaws.min() == pytest.approx(-SWING_DEG)
    # The swing is symmetric: frames k and FRAMES/2 - k show the same yaw, so they are the same picture.
    np.testing.assert_array_equal(frames[3], frames[FRAMES // 2 - 3])
    assert np.abs(frames[FRAMES // 4] - frames[3 * FRAMES // 4]).mean() > 5  # the two extremes differ
    # Frame 0 shows the head from the front, although it was turned and tilted in its picture: the
    # face is about as wide left and right of the panel's centre line.
    drawn = np.abs(frames[0] - BACKGROUND.astype(int)).sum(axis=2) > 30
    cols = np.nonzero(drawn.any(axis=0))[0]
    assert abs((cols[0] + cols[-1]) / 2 - PANEL / 2) < 0.05 * PANEL
    assert drawn.mean() > 0.2


@pytest.mark.parametrize(
    ("yaw", "pitch", "expected"),
    [
        (30.0, 0.0, (-30.0, 0.0)),  # the face turned towards the picture's right: negative yaw
        (-30.0, 0.0, (30.0, 0.0)),  # towards the picture's left (the person's right): positive
        (0.0, 30.0, (0.0, 30.0)),  # the nose raised (y down in the picture): looking up is positive pitch
    ],
)
def test_pose_signs_are_the_readmes(shared_dir: Path, yaw: float, pitch: float, expected: tuple[float, float]) -> None:
    _, mesh = reference_mesh(shared_dir)
    turned = turned_mesh(shared_dir, mesh, yaw_deg=yaw, pitch_deg=pitch)
    change = np.degrees(turned.pose - mesh.pose)
    assert change[:2] == pytest.approx(expected, abs=3.0)  # about the turn (the reference is not exactly frontal)
    # Roll: the picture's right eye lower than its left is a clockwise tilt, positive (image00050 has 4°).
    left_eye, right_eye = mesh.landmarks[36], mesh.landmarks[45]
    assert right_eye[1] > left_eye[1] and np.degrees(mesh.pose[2]) > 0
