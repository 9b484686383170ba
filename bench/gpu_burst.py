"""Jobs like members' for bench/gpu.py, sent through the bot's job service one at a time or all at once.

A member's job here: the default steps mostly (a few asked for 5 fewer or 5 more, which makes batches of their
own), guidance scales mixed (they share batches), the safety checker on, two repaints allowed. The detector
finds no face in one image of ``--repaint-every`` (bench/models.py's ``RepaintingDetector``), so the face gate
sends those jobs back to the painter with their next seed, as it does a real image without a usable face.
Every sample uses other seeds; a configuration's burst is run ``--samples`` times for its spread.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from t2f.bounds import MEMBER_STEPS
from t2f.faces import FaceRequest
from t2f.serve.jobs import FAILED, JobRequest, JobResult
from t2f.serve.service import JobService

GUIDANCE = (5.0, 6.0, 7.5, 7.5, 7.5, 7.5, 9.0, 12.0)  # most members keep the default


def user_jobs(
    count: int, args: argparse.Namespace, *, profile: str, sample: int, tag: str, mixed: bool = True
) -> list[JobRequest]:
    """``count`` jobs as members send them (see the module's text); ``sample`` picks their seeds and mix;
    without ``mixed`` every job has the default steps."""
    rng = np.random.default_rng(sample)
    default = args.fast_steps if profile == "fast" and args.fast_steps else args.steps
    step_choices = (*(default,) * 6, max(MEMBER_STEPS.low, default - 5), default + 5)
    return [
        JobRequest(
            job_id=f"{tag}{sample:02d}{index:05d}",
            user_id=index,
            face=FaceRequest(
                f"a portrait photo of person {index}",
                seed=sample * 100_000 + index,
                steps=int(rng.choice(step_choices)) if mixed else default,
                guidance=float(rng.choice(GUIDANCE)),
                size=args.size,
                profile=profile,
            ),
            repaints_left=2,
        )
        for index in range(count)
    ]


async def serve(service: JobService, jobs: list[JobRequest], *, together: bool) -> dict[str, object]:
    """Submit -> files for ``jobs``: one after another (``together`` false) or all at once. Latency p50/p95,
    faces per minute, paints per job (repaints included), how the jobs ended, and (one at a time) the median
    seconds of each stage from the jobs' reports."""
    latencies: list[float] = []
    results: list[JobResult] = []
    started = time.perf_counter()
    for wave in [jobs] if together else [[job] for job in jobs]:
        submitted = time.perf_counter()
        handles = [service.submit(job) for job in wave]
        for handle in handles:
            handle.result.add_done_callback(lambda _, t=submitted: latencies.append(time.perf_counter() - t))
        results += await asyncio.gather(*(h.result for h in handles))
    total = time.perf_counter() - started
    broken = [r.user_message for r in results if r.user_message == FAILED.format(job_id=r.job_id)]
    if broken:  # a crash, not a face the gate refused three times (those are members' results too)
        raise RuntimeError(f"{len(broken)} jobs failed: {broken[0]}")
    paints = [1 + len(r.report.seeds_tried) for r in results if r.report is not None and r.report.request is not None]
    stages: dict[str, list[float]] = {}
    for result in [] if together else results:
        for name, seconds in (result.report.timings_s if result.report else {}).items():
            stages.setdefault(name, []).append(seconds)
    return {
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "per_min": len(latencies) / total * 60,
        "paints": float(np.mean(paints)) if paints else 1.0,
        "ended": {status: sum(r.status == status for r in results) for status in {r.status for r in results}},
        "stages": {name: float(np.median(values)) for name, values in stages.items()},
    }


def one_member(service: JobService, args: argparse.Namespace, *, profile: str, tag: str) -> dict[str, object]:
    """``args.singles`` jobs, each sent when the one before it is done (the default steps: one member's /face)."""
    jobs = user_jobs(args.singles, args, profile=profile, sample=0, tag=tag, mixed=False)
    return asyncio.run(serve(service, jobs, together=False))


def bursts(service: JobService, args: argparse.Namespace, *, profile: str, tag: str, samples: int) -> dict[str, object]:
    """``samples`` bursts of ``args.burst`` jobs sent at once, each with other seeds: the median and the spread
    (smallest and largest) of faces per minute and of the latency p50, and each sample's numbers."""
    runs = [
        asyncio.run(serve(service, user_jobs(args.burst, args, profile=profile, sample=1 + n, tag=tag), together=True))
        for n in range(samples)
    ]
    per_min = [float(run["per_min"]) for run in runs]  # type: ignore[arg-type]
    p50 = [float(run["p50"]) for run in runs]  # type: ignore[arg-type]
    return {
        "per_min": float(np.median(per_min)),
        "per_min_range": (min(per_min), max(per_min)),
        "p50": float(np.median(p50)),
        "p50_range": (min(p50), max(p50)),
        "paints": float(np.mean([float(run["paints"]) for run in runs])),  # type: ignore[arg-type]
        "samples": runs,
    }
