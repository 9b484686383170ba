"""The face gate's CPU cost per face, against the detection it reads (which PRNet's crop needs anyway).

    python bench/gate.py --out bench/results/gate-cpu.md

On the 16 AFLW2000-3D samples of ../shared/prnet: MTCNN detection (boxes and five keypoints) and then
the gate's verdict (count, size, yaw/pitch from the keypoints) are timed separately, in one run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from common import machine, measure, publish, shared_dir, table
from PIL import Image

from t2f.stages.detect import FaceDetector
from t2f.stages.gate import GateLimits, judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    images = [
        np.asarray(Image.open(p).convert("RGB"))
        for p in sorted((shared_dir() / "prnet" / "aflw2000-samples").glob("*.jpg"))
    ]
    detector = FaceDetector()
    boxes = [detector.detect(image) for image in images]
    limits = GateLimits()
    detect = measure(lambda: [detector.detect(image) for image in images[:4]], runs=5)
    gate = measure(
        lambda: [judge(image.shape, found, limits) for image, found in zip(images, boxes, strict=True)], runs=args.runs
    )
    per_face_detect = {k: v / 4 for k, v in detect.items()}
    per_face_gate = {k: v / len(images) for k, v in gate.items()}
    rows = [
        [
            "MTCNN detection (boxes + 5 keypoints), 450 px",
            f"{per_face_detect['p50']:.2f}",
            f"{per_face_detect['p95']:.2f}",
        ],
        ["face gate (count, size, yaw/pitch)", f"{per_face_gate['p50']:.4f}", f"{per_face_gate['p95']:.4f}"],
    ]
    verdicts = [judge(image.shape, found, limits) for image, found in zip(images, boxes, strict=True)]
    passed = sum(v.passed for v in verdicts)
    report = "\n\n".join(
        [
            "# Face gate: CPU cost per face",
            f"Machine: {machine()}. The 16 AFLW2000-3D samples of ../shared/prnet; milliseconds per face, median and "
            f"95th percentile (detection over 4 images x 5 runs, the gate over 16 x {args.runs}).",
            table(["step", "p50 ms", "p95 ms"], rows),
            f"The gate adds {per_face_gate['p50']:.4f} ms to the {per_face_detect['p50']:.0f} ms of detection that "
            "PRNet's crop needs anyway (target: 5 ms or less; detection here ran beside the test suite on 2 cores, "
            f"about 80 ms when the machine is quiet). With the default limits {passed} of 16 samples pass "
            "(AFLW2000 holds many turned heads on purpose).",
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
