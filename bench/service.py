"""Benchmark: end-to-end /face work through the job service at 1, 4 and 16 concurrent users.

    .venv/bin/python bench/service.py [--size 256] [--out bench/results/service-cpu.md]
    .venv/bin/python bench/service.py --model sd14 --size 512 --device cuda --out bench/results/service-cuda.md

Each user submits two faces at once. Configurations, measured in the same run:
- naive: PNDM 50 steps, no batching, files written on the GPU thread, upstream's per-vertex OBJ writer;
- ours, batching off: DPM-Solver++ 25 steps, batch 1, files written on the CPU thread meanwhile;
- ours, batching on: the same with up to 4 same-shape faces per denoising loop.
The whole image is the face crop (random weights paint no face). PRNet runs its real network with
random weights and answers with a real face's position map, so every later stage costs what it would
for a real face (bench/models.py, RealFacePRNet).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, publish, shared_dir, table
from models import InlinePainter, RealFacePRNet, text_to_image
from reconstruction import naive_obj, reference_face

import t2f.export.package
from t2f.faces import FaceMesh, FaceRequest
from t2f.serve.jobs import JobRequest
from t2f.serve.route import Route
from t2f.serve.service import JobService
from t2f.serve.warmup import LocalStages
from t2f.stages.pipeline import FacePipeline
from t2f.stages.prnet.uv import UVData

USERS = (1, 4, 16)


def naive_obj_bytes(mesh: FaceMesh) -> bytes:
    return naive_obj(mesh.vertices, mesh.colors / 255, mesh.triangles + 1).encode()


JOBS_PER_USER = 2


async def serve(route: Route, *, max_batch: int, users: int, steps: int, size: int) -> dict[str, float]:
    """Submit ``users`` x 2 faces at once; per-face latency (submit to files) and throughput."""
    service = JobService(route, max_batch=max_batch, capacity=1000, job_timeout_s=3600)
    done: list[float] = []
    start = time.perf_counter()
    handles = []
    for user in range(users):
        for index in range(JOBS_PER_USER):
            face = FaceRequest(f"portrait {user} {index}", seed=user * 10 + index, steps=steps, size=size)
            # Fresh ids every call: a backend may remember finished job ids (the Ray one does).
            job = JobRequest(job_id=secrets.token_hex(6), user_id=user, output="obj", face=face)
            handle = service.submit(job)
            handle.result.add_done_callback(lambda _: done.append(time.perf_counter()))
            handles.append(handle)
    results = await asyncio.gather(*(h.result for h in handles))
    assert all(r.status == "done" and "face.obj" in r.files for r in results), [r.user_message for r in results]
    await service.shutdown()
    latencies = np.array(done) - start
    return {
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "per_min": len(done) / (max(done) - start) * 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "sd14"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    fast_dtype = torch.float16 if cuda else torch.float32
    uv = UVData.load(shared_dir() / "prnet" / "uv-data")
    _, face_map, _, _ = reference_face()

    def backend(kind: str) -> Route:
        naive = kind == "naive"
        stage = text_to_image(
            args.model,
            device=args.device,
            dtype=torch.float32 if naive else fast_dtype,
            scheduler="pndm" if naive else "dpmpp",
            speedups=cuda and not naive,
        )
        prnet = RealFacePRNet(
            face_map, device=args.device, dtype=torch.float32 if naive else fast_dtype, channels_last=cuda and not naive
        )
        stages = LocalStages.around(FacePipeline(prnet=prnet, uv=uv, text_to_image=stage), crop="whole")
        return InlinePainter(stages).route() if naive else stages.route()

    configs = [
        ("naive: PNDM 50, batch 1, inline files, per-vertex OBJ", "naive", 1, 50),
        ("ours, batching off", "ours", 1, 25),
        ("ours, batching on (up to 4)", "ours", 4, 25),
    ]
    rows, throughput = [], {}
    fast_obj = t2f.export.package.obj_bytes
    for label, kind, max_batch, steps in configs:
        worker = backend(kind)
        # The naive writer stands in for ours in the naive configuration only.
        t2f.export.package.obj_bytes = naive_obj_bytes if kind == "naive" else fast_obj  # type: ignore[assignment]
        asyncio.run(serve(worker, max_batch=max_batch, users=1, steps=2, size=args.size))  # warm-up
        for users in USERS:
            stat = asyncio.run(serve(worker, max_batch=max_batch, users=users, steps=steps, size=args.size))
            throughput[(kind, max_batch, users)] = stat["per_min"]
            rows.append(
                [
                    label,
                    str(users),
                    str(users * JOBS_PER_USER),
                    f"{stat['p50']:.2f}",
                    f"{stat['p95']:.2f}",
                    f"{stat['per_min']:.1f}",
                ]
            )
    t2f.export.package.obj_bytes = fast_obj
    ratio = throughput[("ours", 4, 16)] / throughput[("naive", 1, 16)]
    batching = throughput[("ours", 4, 16)] / throughput[("ours", 1, 16)]
    report = "\n\n".join(
        [
            "# Service benchmark",
            f"Machine: {machine()}. Model: {args.model}, {args.size} px, device {args.device}. Each user submits "
            f"{JOBS_PER_USER} faces at once; latency is submit to files ready.",
            table(["configuration", "users", "faces", "latency p50 s", "latency p95 s", "faces/min"], rows),
            f"At 16 users, ours (batching on) vs naive: **{ratio:.2f}x** the throughput; batching on vs off: "
            f"{batching:.2f}x (same run).",
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
