"""The preview strip a chat user reads at a glance: the source image, then the mesh shaded from the
front, at three-quarter and in profile, then textured from the front (:mod:`t2f.export.raster` draws
the views; :mod:`t2f.export.render_torch` on a GPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from t2f.export.raster import BACKGROUND, PANEL, draw_view, shade, soften_edges, view_mesh
from t2f.faces import FaceMesh, decimate

if TYPE_CHECKING:
    from t2f.export.render_torch import ViewRenderer

VIEWS = (("front", 0.0), ("3/4", 45.0), ("profile", 80.0))  # turns of the head about its vertical axis, degrees


def fit_image(image: np.ndarray, size: int = PANEL) -> np.ndarray:
    """(size, size, 3) uint8: ``image`` scaled to fit, centred on the background colour."""
    picture = Image.fromarray(image)
    picture.thumbnail((size, size), Image.Resampling.BILINEAR)
    panel = Image.new("RGB", (size, size), tuple(int(c) for c in BACKGROUND))
    panel.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2))
    return np.asarray(panel)


def coarse_mesh(mesh: FaceMesh, step: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, triangles, colors) of the mesh decimated to every ``step``-th UV row and column (pose kept)."""
    light = decimate(mesh, step)
    return light.vertices, light.triangles, light.colors


def preview_strip(
    image: np.ndarray | None, mesh: FaceMesh, *, size: int = PANEL, renderer: ViewRenderer | None = None
) -> np.ndarray:
    """(size, 5 * size, 3) uint8: image | shaded front | shaded 3/4 | shaded profile | textured front; without
    an ``image`` (a member's photo they keep to themselves), (size, 4 * size, 3): the four views alone.

    The views show the pose-normalised head (front faces only, anti-aliased silhouettes), drawn by
    ``renderer`` when given (:mod:`t2f.export.render_torch`, a GPU), else by numpy.
    """
    view = view_mesh(mesh)
    panels = [] if image is None else [fit_image(image, size)]
    yaws = np.array([yaw for _, yaw in VIEWS])
    if renderer is not None and (drawn := renderer.draw(view, yaws, size, looks=("clay", "textured"))) is not None:
        labelled = [_label(panel, label) for panel, (label, _) in zip(drawn["clay"], VIEWS, strict=True)]
        return np.concatenate([*panels, *labelled, _label(drawn["textured"][0], "textured")], axis=1)
    textured = None
    for label, yaw in VIEWS:
        raster, light = draw_view(view, yaw, size)
        covered = raster.face >= 0
        panels.append(_label(soften_edges(shade(raster, view.triangles, light, None), covered), label))
        if textured is None:  # the front view's raster serves the textured panel too
            textured = soften_edges(shade(raster, view.triangles, light, view.colors), covered)
    assert textured is not None
    panels.append(_label(textured, "textured"))
    return np.concatenate(panels, axis=1)


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    picture = Image.fromarray(panel)
    ImageDraw.Draw(picture).text((6, 4), text, fill=(230, 230, 230))
    return np.asarray(picture)
