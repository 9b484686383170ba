"""Benchmark: decoding members' pictures (t2f.files.images.load_image): time and peak memory per picture.

    .venv/bin/python bench/images.py [--before DIR] [--out bench/results/images-cpu.md]

``--before DIR``: also decode with the t2f of another checkout (a git worktree of an older commit),
interleaved with this one's, for a before/after table from one run.

Each picture is decoded in a fresh process, so its peak resident memory (VmHWM, reset after the imports,
less the memory before decoding) is that decode's alone. Pictures: a phone photo (JPEG, 8000x6000 and 4000x3000), a
large PNG photo, and a near-empty 9990x9990 transparent PNG (388 KB: the smallest upload that makes the
most pixels under the 100-MP limit).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.data import astronaut

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, publish, table

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
from t2f.files.images import load_image

def mib(key):  # the process's resident memory now (VmRSS) or at its peak since the reset (VmHWM)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024

data = open(sys.argv[1], "rb").read()
open("/proc/self/clear_refs", "w").write("5")  # reset the peak: the imports' own does not count
base, started = mib("VmRSS:"), time.perf_counter()
loaded = load_image(data)
seconds = time.perf_counter() - started
print(json.dumps({"s": seconds, "mib": mib("VmHWM:") - base, "shape": list(loaded.pixels.shape)}))
"""


def pictures(folder: Path) -> dict[str, Path]:
    """The pictures, written once into ``folder``."""
    photo = Image.fromarray(astronaut())
    made = {
        "JPEG photo 8000x6000": photo.resize((8000, 6000), Image.Resampling.BILINEAR),
        "JPEG photo 4000x3000": photo.resize((4000, 3000), Image.Resampling.BILINEAR),
        "PNG photo 4000x3000": photo.resize((4000, 3000), Image.Resampling.BILINEAR),
        "transparent PNG 9990x9990": Image.fromarray(np.zeros((9990, 9990, 4), np.uint8), "RGBA"),
    }
    paths = {}
    for name, image in made.items():
        path = folder / (name.replace(" ", "-") + (".jpg" if name.startswith("JPEG") else ".png"))
        if not path.exists():
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG" if name.startswith("JPEG") else "PNG", quality=90)
            path.write_bytes(buffer.getvalue())
        paths[name] = path
    return paths


def decode(path: Path, code: Path) -> dict[str, float]:
    """Seconds and peak MiB of one decode of ``path`` by the t2f in ``code``, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(code)}  # run from ``code`` too: "-c" puts the working folder first
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], check=True, capture_output=True, text=True, env=env, cwd=code
    )
    return json.loads(done.stdout)


def median(said: list[dict[str, float]]) -> str:
    return f"{np.median([s['s'] for s in said]) * 1000:.0f} ms, {np.median([s['mib'] for s in said]):.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/t2f-bench-images"))
    parser.add_argument("--before", type=Path, help="another checkout whose t2f decodes too, interleaved")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    codes: dict[str, Path] = {"this checkout": ROOT}
    if args.before:
        commit = subprocess.run(
            ["git", "-C", str(args.before), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        codes[f"before ({commit or args.before.name})"] = args.before
    rows = []
    for name, path in pictures(args.folder).items():
        said: dict[str, list[dict[str, float]]] = {label: [] for label in codes}
        for _ in range(args.runs):
            for label, code in codes.items():
                said[label].append(decode(path, code))
        rows.append(
            [
                name,
                f"{path.stat().st_size / 1e6:.2f} MB",
                *(median(said[label]) for label in reversed(codes)),
                "x".join(map(str, said["this checkout"][0]["shape"])),
            ]
        )
    report = "\n\n".join(
        [
            "# Decoding members' pictures",
            f"Machine: {machine()}. Median of {args.runs} decodes per cell, each in a fresh process, the checkouts "
            "interleaved; memory is the decode's peak resident memory over the process's before it (Linux VmHWM, "
            "reset first).",
            table(["picture", "file", *reversed(codes), "pixels out"], rows),
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
