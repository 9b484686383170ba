"""Benchmark: ghosts on the hidden side of a turned head, upstream's texture against the visibility-aware one.

    .venv/bin/python bench/texture_visibility.py [--out bench/results/texture-visibility-cpu.md] [--pictures DIR]

A real PRNet face (AFLW2000 image00050, PRNet's saved output, ../shared) with its pose undone is the
known head; its texture as the photo showed it (a nearly frontal photo) is the known texture. The
head is drawn turned by each yaw in that texture (unlit, on a blotchy, speckled background), and the
texture is reconstructed from each drawing with the perfect position map, two ways:

- **before**: upstream PRNet's, the drawing sampled at every texel (``uv_texture``, ``vertex_colors``);
- **after**: t2f's, the same with every texel the drawing did not show borrowed from the mirrored side
  (``build_face_mesh``: :mod:`t2f.stages.prnet.texture`).

Errors are mean absolute differences from the known texture in levels of 255 (RGB averaged), over the
texels the known texture itself trusts (the reference photo saw them well): the **hidden** texels
(no triangle around them is drawn in the turned view), the whole **far half** of the UV map (the side
turned away), and the **seen** texels (which should not change). The same for the vertex colours (what
face.obj, face.glb, the preview and the turntable show). ``--pictures`` writes, per yaw, the drawing, the
two textures and the known one, and the preview's textured panel both ways, for a person to look at.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The reference mesh and the turned-view drawing the tests use (tests/mesh_fixtures.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import machine, measure, publish, shared_dir, table
from mesh_fixtures import reference_pos, turned_view

from t2f.export.preview import preview_strip
from t2f.faces import UV_SIZE
from t2f.stages.prnet.postprocess import build_face_mesh, uv_texture, vertex_colors
from t2f.stages.prnet.texture import seen_texture, vertex_trust
from t2f.stages.prnet.uv import UVData

YAWS = (0.0, 20.0, 40.0, 60.0)


def error(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """Mean absolute difference in levels of 255 over the ``where`` rows of (N, 3) colours."""
    return float(np.abs(a[where].astype(np.float64) - b[where].astype(np.float64)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--pictures", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0]  # this VM is shared: say how busy it was
    uv = UVData.load(shared_dir() / "prnet" / "uv-data")
    photo, pos = reference_pos(shared_dir())
    known = build_face_mesh(photo, pos, uv)
    known_texture = uv_texture(photo, pos)  # the photo's own samples: nearly frontal, so seen on both sides
    known_colors = known_texture.reshape(-1, 3)[uv.face_ind]
    trusted = vertex_trust(known.vertices, known.triangles, known.uv, known.image_shape) >= 1.0
    cols = uv.face_ind % UV_SIZE
    rows_out, pictures, timing_rows = [], [], []
    for yaw in YAWS:
        view = turned_view(known, known_texture, yaw)
        far = (cols >= UV_SIZE // 2) if yaw > 0 else np.zeros_like(trusted)
        groups = {"hidden": ~view.seen & trusted, "far half": far & trusted, "seen": view.seen & trusted}
        before_texture = uv_texture(view.image, view.pos)
        before_colors = vertex_colors(view.image, view.pos.reshape(-1, 3)[uv.face_ind])
        after = build_face_mesh(view.image, view.pos, uv)
        after_texels = after.texture.reshape(-1, 3)[uv.face_ind]
        before_texels = before_texture.reshape(-1, 3)[uv.face_ind]
        row = [f"{yaw:.0f}°", f"{groups['hidden'].mean():.1%}"]
        for name in ("hidden", "far half", "seen"):
            where = groups[name]
            if not where.any():
                row += ["–", "–"]
                continue
            row += [
                f"{error(before_texels, known_colors, where):.1f} → {error(after_texels, known_colors, where):.1f}",
                f"{error(before_colors, known_colors, where):.1f} → {error(after.colors, known_colors, where):.1f}",
            ]
        rows_out.append(row)
        vertices = view.pos.reshape(-1, 3)[uv.face_ind]
        before_ms = measure(
            lambda v=view, p=vertices: (uv_texture(v.image, v.pos), vertex_colors(v.image, p)), runs=args.runs
        )
        trust_ms = measure(lambda p=vertices: vertex_trust(p, uv.triangles, uv.uv_coords, (512, 512)), runs=args.runs)
        trust = vertex_trust(vertices, uv.triangles, uv.uv_coords, (512, 512))
        fill_ms = measure(
            lambda t=trust, tex=before_texture, c=before_colors: seen_texture(tex, c, t, uv.face_ind), runs=args.runs
        )
        timing_rows.append(
            [f"{yaw:.0f}°", f"{before_ms['p50']:.1f}", f"{trust_ms['p50']:.1f}", f"{fill_ms['p50']:.1f}"]
        )
        if args.pictures is not None:
            small = np.asarray(Image.fromarray(view.image).resize((UV_SIZE, UV_SIZE), Image.BILINEAR))
            pictures.append(np.concatenate([small, before_texture, after.texture, known_texture], axis=1))
            old = dataclasses.replace(after, colors=before_colors, texture=before_texture)
            strips = [preview_strip(view.image, mesh)[:, -256:] for mesh in (old, after)]
            Image.fromarray(np.concatenate(strips, axis=1)).save(args.pictures / f"textured-yaw{yaw:.0f}.png")
    if args.pictures is not None:
        Image.fromarray(np.concatenate(pictures, axis=0)).save(args.pictures / "textures.png")
    headers = ["yaw", "hidden texels", "hidden: texture", "hidden: vertex colours"]
    headers += ["far half: texture", "far half: vertex colours", "seen: texture", "seen: vertex colours"]
    report = "\n\n".join(
        [
            "# Texture on the hidden side of a turned head: before → after (bench/texture_visibility.py)",
            f"Machine: {machine()}; load average {load:.1f} when it started.",
            "Mean absolute error against the known texture, levels of 255 (lower is better); the known head is"
            " AFLW2000 image00050 (PRNet's saved output), drawn turned in its own texture. Before: upstream PRNet's"
            " sampling of every texel; after: t2f's visibility-aware texture (hidden texels from the mirrored side).",
            table(headers, rows_out),
            "Hidden texels at 0° are a few in the nostrils and along a fold of the mesh's top edge; their"
            " colours come from their neighbours, so they move away from the (nearly identical) photo samples.",
            "Time per face, ms (p50 of the runs): upstream's sampling (texture and vertex colours), and what"
            " t2f adds to it: the trust of every vertex (normals, z-buffer) and the mirror fill.",
            table(["yaw", "sampling (before)", "+ vertex trust", "+ mirror fill"], timing_rows),
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
