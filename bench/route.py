"""Benchmark: the serving route on a CPU, with a stand-in painter that holds the GPU thread as an H200 would.

    .venv/bin/python bench/route.py [--before 4573948] [--samples 3] [--out bench/results/route-cpu.md]

A 32-job burst (32 members, one face each, 25 steps, guidance 7.5, 512 px) goes through the job service.
The painter is a stand-in: for each batch it sleeps, holding the GPU thread, for the time the fast path
painted a batch of that size on an H200 (bench/results/gpu-nvidia-h200.md: 293, 405, 640 and 1159 ms
for 1, 2, 4 and 8 faces; a batch is padded to its bucket) and does no CPU work; it returns a real face
photo (AFLW2000 image00050). Everything after it is real and runs on this machine: the detector
(PyTorch MTCNN) and the face gate, PRNet's network at full cost answering with that photo's real
position map, the mesh, and every file (PNG, OBJ, GLB, preview strip, turntable). So this shows what
the route does around a fast GPU: how busy the painter is kept (its busy fraction) and the faces per
minute, when everything after painting shares this machine's cores.

"Before" is the serving core at ``--before`` (the commit before the route rebuild), "after" the working
tree; each runs in a process of its own, alternating, ``--samples`` bursts each, in one run. Both use
the configuration t2f.build gives a GPU host: faces on their own thread, two files threads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from common import machine, publish, table  # noqa: E402

# The fast path's painting on an H200, seconds per batch of each bucket (bench/results/gpu-nvidia-h200.md).
H200_BATCH_S = {1: 0.2926, 2: 0.4050, 4: 0.6402, 8: 1.1592}
BURST, MAX_BATCH, STEPS, SIZE, FILES_THREADS = 32, 8, 25, 512, 2


class StandInPainter:
    """The text-to-image interface: holds the calling thread for the H200's time of the batch's bucket and
    answers every request with the same real face photo. Keeps its own busy seconds."""

    model, revision = "stand-in (H200 batch times)", None

    def __init__(self, photo: np.ndarray) -> None:
        self.photo = photo
        self.busy_s = 0.0
        self.batches: list[int] = []

    def check_image(self, image: np.ndarray) -> bool:
        return False

    def generate_batch(self, requests: Any, *, on_step: Any = None, **options: Any) -> list[Any]:
        from t2f.faces import FaceImage, StepProgress

        bucket = next(size for size in sorted(H200_BATCH_S) if size >= len(requests))
        seconds = H200_BATCH_S[bucket]
        self.batches.append(len(requests))
        started = time.perf_counter()
        total = requests[0].steps
        for step in range(1, total + 1):  # the steps' progress, spread over the batch's time
            time.sleep(seconds / total)
            if on_step is not None:
                on_step(StepProgress(step=step, total=total))
        self.busy_s += time.perf_counter() - started
        return [
            FaceImage(r, self.photo.copy(), nsfw=False, withheld_reason=None, dropped_prompt="", timings={})
            for r in requests
        ]


def real_face_prnet(raw: np.ndarray) -> Any:
    """PRNet's network at full cost (random weights) answering with a real face's position map."""
    from t2f.stages.prnet.checkpoint import PRNetConfig
    from t2f.stages.prnet.model import PRNet
    from t2f.stages.prnet.network import ResFCN256

    class RealFacePRNet(PRNet):
        def predict(self, crops: np.ndarray) -> np.ndarray:
            super().predict(crops)
            return np.repeat(raw[None], len(crops), axis=0)

    return RealFacePRNet(ResFCN256().eval(), PRNetConfig(), device="cpu")


def service(painter: StandInPainter) -> Any:
    """The job service around the stand-in, as the serving core of this tree builds it on a GPU host."""
    from reconstruction import reference_face

    from t2f.stages.detect import FaceDetector
    from t2f.stages.gate import GateLimits
    from t2f.stages.pipeline import FacePipeline

    _, raw, _, uv = reference_face()
    pipeline = FacePipeline(prnet=real_face_prnet(raw), uv=uv, detector=FaceDetector(), text_to_image=painter)
    try:  # the route (after the rebuild)
        from t2f.serve.faces import FaceFinder
        from t2f.serve.files import FileWriter
        from t2f.serve.paint import Painter
        from t2f.serve.route import Route
        from t2f.serve.service import JobService

        route = Route(
            paint=Painter(painter),
            faces=FaceFinder(pipeline, crop="detect", gate=GateLimits()),
            files=FileWriter(),
            faces_thread=True,
            files_threads=FILES_THREADS,
        )
        return JobService(route, max_batch=MAX_BATCH, capacity=1000, job_timeout_s=3600)
    except ImportError:  # the backend (before it)
        from t2f.serve.backend import LocalFaceBackend  # type: ignore[import-not-found]

        from t2f.serve.service import JobService

        backend = LocalFaceBackend(pipeline, crop="detect", preview_every=0, gate=GateLimits(), overlap=True)
        return JobService(  # type: ignore[call-arg]
            backend, max_batch=MAX_BATCH, capacity=1000, job_timeout_s=3600, export_threads=FILES_THREADS
        )


async def burst(jobs: Any, count: int, tag: str, painter: StandInPainter) -> dict[str, float]:
    from t2f.faces import FaceRequest
    from t2f.serve.jobs import JobRequest

    busy_before = painter.busy_s
    started = time.perf_counter()
    handles = [
        jobs.submit(JobRequest(f"{tag}{i:06d}", i, FaceRequest(f"a portrait {i}", seed=i, steps=STEPS, size=SIZE)))
        for i in range(count)
    ]
    done: list[float] = []
    for handle in handles:
        handle.result.add_done_callback(lambda _: done.append(time.perf_counter() - started))
    results = await asyncio.gather(*(h.result for h in handles))
    assert all(r.status == "done" for r in results), [r.user_message for r in results]
    wall = time.perf_counter() - started
    return {
        "per_min": count / wall * 60,
        "busy": (painter.busy_s - busy_before) / wall,
        "p50": float(np.percentile(done, 50)),
        "wall": wall,
    }


def worker(samples: int) -> None:
    """In this tree's process: one warm-up burst, then ``samples`` bursts, each printed as a JSON line."""
    from reconstruction import reference_face
    from skimage.transform import resize

    image = reference_face()[0]
    photo = (resize(image, (SIZE, SIZE), preserve_range=True, anti_aliasing=True)).astype(np.uint8)
    painter = StandInPainter(photo)

    async def run() -> None:
        jobs = service(painter)
        await burst(jobs, 4, "warm", painter)  # the detector's and PRNet's first calls
        for sample in range(samples):
            print(json.dumps(await burst(jobs, BURST, f"b{sample:05d}", painter)), flush=True)
        await jobs.shutdown()

    asyncio.run(run())


def run_tree(tree: Path, samples: int) -> list[dict[str, float]]:
    """This file's worker, importing t2f from ``tree``, in a process of its own."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(BENCH)])}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--samples", str(samples)]
    printed = subprocess.run(command, env=env, cwd=tree, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in printed.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", default="4573948", help="the commit before the route rebuild")
    parser.add_argument("--samples", type=int, default=3, help="bursts per tree, alternating before/after")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.samples)
    numbers: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="t2f-before-") as folder:
        before = Path(folder) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True)
        try:
            for _ in range(args.samples):  # alternating, one burst each, so drift hits both alike
                numbers["before"] += run_tree(before, 1)
                numbers["after"] += run_tree(ROOT, 1)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=True)
    rows = []
    for name, runs in numbers.items():
        per_min = [r["per_min"] for r in runs]
        busy = [r["busy"] for r in runs]
        rows.append(
            [
                name,
                f"{np.median(per_min):.1f} ({min(per_min):.1f}-{max(per_min):.1f})",
                f"{np.median(busy):.0%} ({min(busy):.0%}-{max(busy):.0%})",
                f"{np.median([r['p50'] for r in runs]):.1f}",
            ]
        )
    ratio = np.median([r["per_min"] for r in numbers["after"]]) / np.median([r["per_min"] for r in numbers["before"]])
    report = "\n\n".join(
        [
            "# The route with a stand-in H200 painter, on this machine's CPUs",
            f"Machine: {machine()}. {BURST}-job burst, max batch {MAX_BATCH}, {STEPS} steps at {SIZE} px; the "
            f"painter sleeps the H200's time per batch (no CPU work); detection, PRNet, the mesh and every file "
            f"are real, faces on their own thread, {FILES_THREADS} files threads. Before: {args.before}; after: "
            f"the working tree. {args.samples} bursts each, alternating, each tree in a fresh process; median "
            "(range).",
            table(["serving core", "faces/min", "painter busy", "latency p50 s"], rows),
            f"After vs before: **{ratio:.2f}x** the faces per minute (same run).",
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
