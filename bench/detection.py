"""Benchmark: MTCNN on PyTorch (t2f's port) against the ``mtcnn`` package on TensorFlow, same weights, same run.

    .venv/bin/python bench/detection.py [--runs 10] [--out bench/results/detection-cpu.md]

Times one image at a time on the 16 AFLW2000-3D samples (450 px), a 512 px photo (skimage's astronaut)
and the same photo at 1024 px (the detector's largest input), each engine on the CPU, and PyTorch on
CUDA too where there is a GPU. Checks on the AFLW samples that both engines find the same face: the
largest box's corners, and PRNet's calibrated crop against the crop from the 68 ground-truth landmarks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io as sio
import torch
from PIL import Image
from skimage.data import astronaut
from skimage.io import imread

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, measure, peak_rss_mib, publish, shared_dir, table

from t2f.stages.detect import FaceDetector, crop_from_mtcnn_box
from t2f.stages.prnet.postprocess import crop_from_landmarks


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    paths = sorted((shared_dir() / "prnet" / "aflw2000-samples").glob("*.jpg"))
    aflw = [imread(p) for p in paths]
    photo = astronaut()
    big = np.asarray(Image.fromarray(photo).resize((1024, 1024), Image.Resampling.BICUBIC))
    engines = {"TensorFlow, CPU": FaceDetector(engine="tensorflow"), "PyTorch, CPU": FaceDetector(engine="torch")}
    if torch.cuda.is_available():
        engines["PyTorch, CUDA"] = FaceDetector(engine="torch", device="cuda")

    inputs: list[tuple[str, Callable[[FaceDetector], object], int]] = [
        ("16 AFLW2000-3D samples, 450 px", lambda d: [d.detect(image) for image in aflw], len(aflw)),
        ("photo, 512 px", lambda d: d.detect(photo), 1),
        ("photo, 1024 px", lambda d: d.detect(big), 1),
    ]
    times = {
        (name, engine): measure(lambda run=run, d=detector: run(d), runs=args.runs)["p50"] / count  # type: ignore[misc]
        for name, run, count in inputs
        for engine, detector in engines.items()
    }
    rows = []
    for name, _, _ in inputs:
        tf_ms = times[name, "TensorFlow, CPU"]
        for engine in engines:
            ms = times[name, engine]
            rows.append([name, engine, f"{ms:.1f}", f"{tf_ms / ms:.2f}x"])

    truth = [sio.loadmat(str(p.with_suffix(".mat")))["pt3d_68"][:2].T for p in paths]
    corners, ious = {}, {}
    for engine in ("TensorFlow, CPU", "PyTorch, CPU"):
        boxes = [engines[engine].largest_face(image)[0] for image in aflw]
        corners[engine] = np.array([[b.left, b.top, b.right, b.bottom] for b in boxes])
        ious[engine] = [
            crop_from_mtcnn_box(image, box).overlap(crop_from_landmarks(image, points))
            for image, box, points in zip(aflw, boxes, truth, strict=True)
        ]
    apart = float(np.abs(corners["TensorFlow, CPU"] - corners["PyTorch, CPU"]).max())
    quality = [[engine, f"{np.mean(v):.3f}", f"{min(v):.3f}"] for engine, v in ious.items()]

    report = "\n\n".join(
        [
            "# Face detection benchmark: MTCNN on PyTorch (t2f.stages.mtcnn) vs the mtcnn package on TensorFlow",
            f"Machine: {machine()}. torch threads {torch.get_num_threads()}. One image per call, p50 of "
            f"{args.runs} runs after a warm-up, divided by the images per run; speed-up against TensorFlow on the "
            "CPU in the same run.",
            table(["input", "engine", "ms per image", "vs TensorFlow"], rows),
            f"Same faces: on the 16 AFLW samples the largest boxes' corners differ by at most {apart:.4f} px "
            "between the engines. PRNet's calibrated crop against the crop from the 68 ground-truth landmarks (IoU):",
            table(["engine", "mean", "worst"], quality),
            f"Peak RSS: {peak_rss_mib():.0f} MiB.",
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
