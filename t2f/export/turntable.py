"""An animated GIF of the pose-normalised head swinging from side to side, for chat apps to play inline.

Choices (the file must play inline in Discord, which animates GIFs in embeds, and stay small):

- GIF, not APNG/WebP/MP4: every Discord client animates a GIF embed image; the others are not
  animated everywhere (APNG shows its first frame) or need a video player.
- 256 x 256 px (the preview's panel), 32 frames 80 ms apart: a 2.6 s loop, smooth enough for a
  slow swing; ``loop=0`` repeats forever.
- The head swings ±70° about its own vertical axis on a sine, not a full turn: a PRNet face is an
  open mask with nothing behind it. The sine repeats yaws, so only 17 distinct frames are drawn.
- One shared 255-colour palette (made from the front frame at a quarter of its size, plus the
  background) and no dithering: dither noise would crawl from frame to frame and would compress
  worse. The quarter-size frame holds the same colours: median cut took 3.7 ms instead of 33 and the
  frames' mean error grew from 0.97 to 1.00 levels of 255 (the reference face, once).
- About 0.5 MB and 0.2 s of CPU (bench/reconstruction.py); well under the 2 MB the project allows
  and Discord's 10 to 20 MiB upload limit.
"""

from __future__ import annotations

import functools
import io
from concurrent.futures import Executor
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from t2f.export.parallel import run_parts
from t2f.export.raster import BACKGROUND, PANEL, ViewMesh, draw_view, shade, soften_edges, view_mesh
from t2f.faces import FaceMesh

if TYPE_CHECKING:
    from t2f.export.render_torch import ViewRenderer

FRAMES = 32
FRAME_MS = 80
SWING_DEG = 70.0
# A coarser mesh than the preview's: 17 frames must be drawn in the CPU budget, and the shading hides it.
TURNTABLE_LOD = 4
PALETTE_REDUCE = 4  # the palette's reference frame is reduced this many times on each side


def swing_yaws(frames: int = FRAMES, swing_deg: float = SWING_DEG) -> np.ndarray:
    """(frames,) float64 yaw in degrees of each frame: ``swing_deg * sin(2 pi k / frames)``, a seamless loop."""
    return swing_deg * np.sin(2 * np.pi * np.arange(frames) / frames)


def render_frame(view: ViewMesh, yaw_deg: float, size: int = PANEL) -> np.ndarray:
    """(size, size, 3) uint8: ``view`` turned by ``yaw_deg``, lit, in its vertex colours, anti-aliased."""
    raster, light = draw_view(view, yaw_deg, size)
    return soften_edges(shade(raster, view.triangles, light, view.colors), raster.face >= 0)


def turntable_frames(
    mesh: FaceMesh,
    *,
    size: int = PANEL,
    frames: int = FRAMES,
    pool: Executor | None = None,
    renderer: ViewRenderer | None = None,
) -> np.ndarray:
    """(frames, size, size, 3) uint8 frames of the head swinging; each distinct yaw is drawn once, all at
    once by ``renderer`` when given (:mod:`t2f.export.render_torch`, a GPU), else by numpy, on
    ``pool``'s threads too when given (:func:`~t2f.export.parallel.run_parts`)."""
    view = view_mesh(mesh, TURNTABLE_LOD)
    yaws, which = np.unique(np.round(swing_yaws(frames), 6), return_inverse=True)
    if renderer is not None and (drawn_there := renderer.draw(view, yaws, size)) is not None:
        return drawn_there["textured"][which]
    drawn = run_parts([functools.partial(render_frame, view, float(yaw), size) for yaw in yaws], pool)  # per yaw
    return np.stack(drawn)[which]


def gif_bytes(frames: np.ndarray, *, frame_ms: int = FRAME_MS) -> bytes:
    """An endlessly looping GIF of ``frames`` (N, H, W, 3) uint8, ``frame_ms`` apart, one palette, no dither."""
    reduce = PALETTE_REDUCE if min(frames.shape[1:3]) >= 16 * PALETTE_REDUCE else 1  # small frames: all pixels
    middle = Image.fromarray(frames[len(frames) // 2 if len(frames) % 4 else 0]).reduce(reduce)
    reference = Image.new("RGB", (middle.width, middle.height + 1), tuple(int(c) for c in BACKGROUND))
    reference.paste(middle)  # the background is in the palette even when a frame is all face
    palette = reference.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    indexed = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    buffer = io.BytesIO()
    indexed[0].save(
        buffer, format="GIF", save_all=True, append_images=indexed[1:], duration=frame_ms, loop=0, optimize=False
    )
    return buffer.getvalue()


def turntable_gif(
    mesh: FaceMesh, *, size: int = PANEL, pool: Executor | None = None, renderer: ViewRenderer | None = None
) -> bytes:
    """The turntable of ``mesh`` as GIF bytes (see the module's notes for the choices); frames drawn by
    ``renderer`` or on ``pool`` too (:func:`turntable_frames`)."""
    return gif_bytes(turntable_frames(mesh, size=size, pool=pool, renderer=renderer))
