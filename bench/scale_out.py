"""Benchmark: the same 32-job burst through the job service with the local backend and the Ray backend.

    .venv/bin/python bench/scale_out.py [--size 256] [--rounds 2] [--out bench/results/ray-cpu.md]

16 users submit two faces each at once (max batch 4). The Ray backend runs one replica on a local
cluster (loopback only, one logical GPU, so on this CPU machine it competes for the same cores as
the local run would). Both backends build the same pipeline: the tiny random SD model (DPM-Solver++
25 steps) and PRNet's real network answering with a real face's position map (bench/models.py).
Rounds alternate local / Ray; the ratio is Ray's throughput over the local one in the same run.
Needs ``pip install .[ray]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
# Loopback only, no telemetry, no token file (../shared/docs/scale-out.md), set before ray is imported.
os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
import ray  # noqa: E402

sys.path.insert(0, str(BENCH))
from common import machine, publish, shared_dir, table  # noqa: E402
from service import JOBS_PER_USER, serve  # noqa: E402

from t2f.serve.files import FileWriter  # noqa: E402
from t2f.serve.ray_backend import RayFaceBackend  # noqa: E402
from t2f.serve.route import Route  # noqa: E402
from t2f.serve.warmup import LocalStages  # noqa: E402

USERS, MAX_BATCH = 16, 4


@dataclasses.dataclass(frozen=True)
class BenchReplica:
    """Picklable factory (pickled by value from ``__main__``): the benchmark pipeline, built where it is called."""

    bench_dir: str
    uv_dir: str

    def __call__(self) -> LocalStages:
        import sys

        import torch

        sys.path.insert(0, self.bench_dir)  # bench/models.py, bench/reconstruction.py on the replica
        from models import RealFacePRNet, text_to_image
        from reconstruction import reference_face

        from t2f.serve.warmup import LocalStages
        from t2f.stages.pipeline import FacePipeline
        from t2f.stages.prnet.uv import UVData

        stage = text_to_image("tiny", device="cpu", dtype=torch.float32, speedups=False)
        prnet = RealFacePRNet(reference_face()[1], device="cpu", dtype=torch.float32)
        pipeline = FacePipeline(prnet=prnet, uv=UVData.load(Path(self.uv_dir)), text_to_image=stage)
        return LocalStages.around(pipeline, crop="whole")


async def burst(route: Route, *, size: int, steps: int, users: int = USERS) -> dict[str, float]:
    """``users`` x 2 faces submitted at once, as bench/service.py does, at this benchmark's batch size."""
    return await serve(route, max_batch=MAX_BATCH, users=users, steps=steps, size=size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    factory = BenchReplica(str(BENCH), str(shared_dir() / "prnet" / "uv-data"))
    local = factory().route()
    asyncio.run(burst(local, size=args.size, steps=2, users=2))
    before = asyncio.run(burst(local, size=args.size, steps=args.steps))  # no Ray threads in this process yet
    started = time.perf_counter()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    painter = RayFaceBackend.connect(factory, address="", min_replicas=1, max_replicas=1)
    remote = Route(paint=painter, faces=None, files=FileWriter())  # the files are written here, as the bot does
    ready_s = time.perf_counter() - started
    backends: dict[str, Route] = {"local": local, "Ray Serve, 1 replica": remote}
    for backend in backends.values():  # warm-up: first calls build graphs and caches
        asyncio.run(burst(backend, size=args.size, steps=2, users=2))
    stats: dict[str, list[dict[str, float]]] = {name: [] for name in backends}
    for _ in range(args.rounds):
        for name, backend in backends.items():
            stats[name].append(asyncio.run(burst(backend, size=args.size, steps=args.steps)))
    rows, per_min = [], {}
    for name, runs in stats.items():
        per_min[name] = float(np.median([r["per_min"] for r in runs]))
        rows.append(
            [
                name,
                f"{np.median([r['p50'] for r in runs]):.2f}",
                f"{np.median([r['p95'] for r in runs]):.2f}",
                f"{per_min[name]:.1f}",
                ", ".join(f"{r['per_min']:.1f}" for r in runs),
            ]
        )
    rows.insert(
        0,
        ["local, before Ray started", f"{before['p50']:.2f}", f"{before['p95']:.2f}", "–", f"{before['per_min']:.1f}"],
    )
    ratio = per_min["Ray Serve, 1 replica"] / per_min["local"]
    ray.shutdown()
    report = "\n\n".join(
        [
            "# Ray backend benchmark",
            f"Machine: {machine()}. ray {ray.__version__}. Tiny random SD model, {args.size} px, {args.steps} steps "
            f"(DPM-Solver++), PRNet's real network; {USERS} users x {JOBS_PER_USER} faces submitted at once, max batch "
            f"{MAX_BATCH}; medians of {args.rounds} alternating rounds. Latency is submit to files ready.",
            table(["backend", "latency p50 s", "latency p95 s", "faces/min (median)", "faces/min per round"], rows),
            f"Ray over local, same run (alternating rounds): **{ratio:.2f}x** the throughput. "
            f"Local cluster + Serve + one replica (models loaded) ready in {ready_s:.1f} s.",
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
