"""Benchmark: the GPU fast path and the fast profile against eager, in one run, in about 7 minutes.

    python bench/gpu.py                    # a CUDA host: SD v1-4 architecture with random weights, 512 px, 25 steps
    python bench/gpu.py --smoke            # the tiny test model on the CPU, eagerly (CI runs this)

Three configurations of the bot, each loaded from disk by ``t2f.build`` as the bot loads it: eager
(``T2F_COMPILE=off``), the fast path (``T2F_COMPILE=graphs`` with the decode compiled, ``T2F_COMPILE_VAE``)
painting ``quality`` jobs, and the same painting ``fast`` jobs (Karras sigmas, fewer steps, DeepCache).
Measured: painting per batch bucket, the decode alone, PRNet at batch 1, MTCNN; one member's /face and a
32-job burst like members' (bench/gpu_burst.py: safety checker on, mixed steps and guidance, repaints through
the face gate; each burst ``--samples`` times, with its spread); the warm-up cold, and a restart as a whole
new process (bench/gpu_restart.py); whether CUDA graphs were skipped or anything recompiled after the
warm-up; and, on the same seeds, how far each part of the fast profile moves the picture. Prints the table and
rewrites ``bench/results/gpu-<card>.md`` (or ``--out``) after every section, so a run stopped early still
leaves what it measured; sections that would start past ``--budget-s`` are skipped and named.

The random models are made once, on the GPU, and saved (bench/gpu_setup.py): random weights cost the same
compute as trained ones, but paint noise, so the image differences say how far a change moves the same
computation, not what it does to a face. Every model call runs on the service's GPU thread, as in the bot
(CUDA graphs recorded by ``torch.compile`` belong to the thread that recorded them).

A bare GPU host with torch needs, besides this checkout (run from its root with ``PYTHONPATH=.``), the wheels
bench/gpu_lease.sh lists, and ../shared/prnet (UV data, a reference face; set T2F_SHARED_DIR). With the
``mtcnn`` wheel (and ``joblib``, ``lz4``) detection is t2f's PyTorch MTCNN on a real face photo of the painted
size; without, a stand-in that waits 80 ms (TensorFlow MTCNN's CPU time on the H200 host).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure, shared_dir
from gpu_burst import bursts, one_member
from gpu_setup import counters_now, save_models, settings_env, settings_of, since, stages_of, sync, versions
from models import FaceCostDetector, RealFacePRNet, have_mtcnn_weights
from reconstruction import reference_face

from t2f.build import job_service, local_route, warm_up_call
from t2f.config import Settings
from t2f.errors import first_line
from t2f.export.package import result_files
from t2f.export.render_torch import ViewRenderer
from t2f.faces import FaceRequest, FaceResult
from t2f.serve.service import JobService
from t2f.serve.warmup import LocalStages
from t2f.stages.compiling import buckets_for
from t2f.stages.decode import LatentDecoder
from t2f.stages.prnet.model import PRNet
from t2f.stages.prnet.postprocess import build_face_mesh, restore_position_map
from t2f.stages.prnet.uv import UVData
from t2f.stages.profiles import FastProfile
from t2f.stages.text2img import TextToImage

RESULTS = Path(__file__).resolve().parent / "results"
MTCNN_S = 0.080  # MTCNN's CPU time per image on the H200 host (../shared/docs/gpu-measurements.md)


def on_gpu_thread(service: JobService, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the service's GPU thread (where the bot runs every model call) and wait for it."""
    return service.gpu.submit(fn).result()


def requests(count: int, args: argparse.Namespace, profile: str = "quality", seed: int = 0) -> list[FaceRequest]:
    steps = args.fast_steps if profile == "fast" and args.fast_steps else args.steps
    return [
        FaceRequest(f"a portrait photo {i}", seed=seed + i, steps=steps, size=args.size, profile=profile)
        for i in range(count)
    ]


def paint_ms(service: JobService, stage: TextToImage, count: int, args: argparse.Namespace, profile: str) -> float:
    def run() -> None:
        stage.generate_batch(requests(count, args, profile), check_safety=False)  # the faces stage checks
        sync(args)

    runs = args.runs if count == 1 else max(2, args.runs - 2)
    return float(on_gpu_thread(service, lambda: measure(run, runs=runs))["p50"])


def images(
    service: JobService, stage: TextToImage, args: argparse.Namespace, profile: str, seed: int = 0
) -> np.ndarray:
    """(N, H, W, 3) float32 pictures of ``args.diff_seeds`` seeds from ``seed``, painted in one batch."""
    painted = on_gpu_thread(
        service, lambda: stage.generate_batch(requests(args.diff_seeds, args, profile, seed), check_safety=False)
    )
    return np.stack([p.image for p in painted]).astype(np.float32)


def prnet_ms(service: JobService, prnet: PRNet, args: argparse.Namespace) -> float:
    crops = np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32)
    return float(
        on_gpu_thread(service, lambda: measure(lambda: prnet.predict(crops), runs=args.prnet_runs, warmup=3))["p50"]
    )


def service_of(settings: Settings, stages: LocalStages) -> JobService:
    return job_service(settings, local_route(settings, stages))


class LastLine(logging.Handler):
    said = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.said = record.getMessage()


def warm_up_s(service: JobService, stages: LocalStages, settings: Settings) -> dict[str, Any]:
    """The bot's start-up warm-up on the service's GPU thread: its seconds, what dynamo and inductor did
    meanwhile (counters), and its log line (where its time went)."""
    before, line = counters_now(), LastLine()
    logging.getLogger("t2f.serve.warmup").addHandler(line)
    try:
        seconds = asyncio.run(service.warm_up(warm_up_call(settings, stages)))
    finally:
        logging.getLogger("t2f.serve.warmup").removeHandler(line)
    return {"seconds": seconds, **since(before), "line": line.said}


def differences(service: JobService, stage: TextToImage, args: argparse.Namespace) -> dict[str, float]:
    """Mean absolute difference (0-255) from the quality pictures, same seeds, of each part of the fast profile
    alone and together, eagerly; and another seed's, for the scale of a whole other picture."""
    dc = {"deepcache_interval": args.deepcache_interval, "deepcache_branch": args.deepcache_branch}
    quality = images(service, stage, args, "quality")
    than = f"eagerly, against the quality picture ({args.steps} steps)"
    variants = {
        f"Karras sigmas, {args.steps} steps, {than}": ("fast", FastProfile(karras_sigmas=True), args.steps),
        f"DeepCache alone, {args.steps} steps, {than}": ("fast", FastProfile(**dc), args.steps),
        f"{args.fast_steps} steps, {than}": ("quality", FastProfile(), args.fast_steps),
        f"{args.fast_steps} steps with Karras sigmas, {than}": (
            "fast",
            FastProfile(karras_sigmas=True),
            args.fast_steps,
        ),
        f"the whole fast profile, {than}": ("fast", FastProfile(karras_sigmas=True, **dc), args.fast_steps),
    }
    other_seed = np.abs(images(service, stage, args, "quality", seed=100) - quality).mean()
    found = {f"other seeds, {than} (a whole other picture, for scale)": float(other_seed)}
    for name, (profile, fast, steps) in variants.items():
        on_gpu_thread(service, lambda fast=fast: stage.use_fast_profile(fast, "off"))
        trial = argparse.Namespace(**{**vars(args), "fast_steps": steps, "steps": steps})
        found[name] = float(np.abs(images(service, stage, trial, profile) - quality).mean())
    on_gpu_thread(service, lambda: stage.use_fast_profile(FastProfile(karras_sigmas=True, **dc), "off"))
    return found


def decode_ms(service: JobService, stage: TextToImage, args: argparse.Namespace) -> dict[int, dict[str, float]]:
    """The decode alone, latents to bytes: eager against the compiled function, at batch 1 and the largest."""
    eager = LatentDecoder(stage.pipeline.vae, "off")
    timed: dict[int, dict[str, float]] = {}
    for count in sorted({1, args.max_batch}):
        latents = torch.randn(count, 4, args.size // 8, args.size // 8, device=args.device, dtype=args.dtype)

        def run(decoder: LatentDecoder, latents: torch.Tensor = latents) -> None:
            decoder(latents)
            sync(args)

        for name, decoder in (("eager", eager), ("compiled", stage.decoder or eager)):
            timing = on_gpu_thread(service, lambda decoder=decoder: measure(lambda: run(decoder), runs=args.runs))
            timed.setdefault(count, {})[name] = timing["p50"]
    return timed


def restart(args: argparse.Namespace, settings: Settings, report_dir: Path) -> dict[str, Any]:
    """A new process with this run's settings and compile cache: the bot's restart (bench/gpu_restart.py)."""
    env = {
        **os.environ,
        **settings_env(settings),
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(Path.cwd())])),
    }
    began = time.perf_counter()
    left = None if args.deadline_s is None else args.deadline_s - (time.monotonic() - args.began)
    child = [sys.executable, str(Path(__file__).resolve().parent / "gpu_restart.py")]
    with (report_dir / "restart.log").open("w") as log:  # the child's own log, for a failed restart
        try:
            printed = subprocess.run(child, stdout=subprocess.PIPE, stderr=log, text=True, timeout=left, env=env).stdout
            ended = "exited"
        except subprocess.TimeoutExpired as stopped:  # its numbers may be out already, its exit hung
            output = stopped.output or ""
            printed, ended = (output if isinstance(output, str) else output.decode()), "stopped at the deadline"
    said = [line for line in printed.splitlines() if line.startswith("{")]
    if not said:
        raise RuntimeError(f"the restarted process {ended} after {time.perf_counter() - began:.0f} s with no numbers")
    return {**json.loads(said[-1]), "process_s": time.perf_counter() - began}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--smoke", action="store_true", help="tiny model, CPU, eager, 5 steps: a CI smoke test")
    add("--max-batch", type=int, default=8)
    add("--out", type=Path, help="default: bench/results/gpu-<card>.md")
    add("--budget-s", type=float, default=480.0, help="skip the sections that would start later")
    add("--deadline-s", type=float, help="seconds from the start: the restart child is stopped then")
    add("--singles", type=int, default=10, help="jobs sent one at a time per configuration")
    add("--samples", type=int, default=3, help="bursts per configuration (the spread)")
    add("--skip", default="", help="comma-separated sections: eager-service (a short lease)")
    add("--channels-last", action="store_true", help="also compile the UNet channels-last (T2F_CHANNELS_LAST=compiled)")
    add("--graphs-single", action="store_true", help="the fast path as T2F_COMPILE=graphs-single")
    add("--fast-steps", type=int, default=20, help="the fast profile's steps (T2F_FAST_STEPS)")
    add("--deepcache-interval", type=int, default=3, help="T2F_DEEPCACHE_INTERVAL")
    add("--deepcache-branch", type=int, default=1, help="T2F_DEEPCACHE_BRANCH")
    add("--repaint-every", type=int, default=4, help="one image in this many has no usable face (a repaint)")
    args = parser.parse_args(argv)
    args.began = time.monotonic()  # --deadline-s counts from here
    args.cuda = torch.cuda.is_available() and not args.smoke
    args.device, args.dtype = ("cuda", torch.float16) if args.cuda else ("cpu", torch.float32)
    args.mode = ("graphs-single" if args.graphs_single else "graphs") if args.cuda else "off"  # the smoke: eager
    args.size, args.steps, args.runs, args.prnet_runs = (512, 25, 5, 20) if not args.smoke else (64, 5, 2, 2)
    if args.smoke:  # the tiny UNet has two blocks: branch 1 is its only one
        args.singles, args.burst, args.samples, args.max_batch = 2, 4, 2, min(args.max_batch, 2)
        args.fast_steps, args.deepcache_interval, args.deepcache_branch = 5, 2, 1
    else:
        args.burst = 32
    args.diff_seeds = 4 if args.cuda else 2
    args.skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    args.buckets = buckets_for(args.max_batch)
    args.detect_s = MTCNN_S if args.cuda else 0.01
    args.torch_mtcnn = have_mtcnn_weights()
    args.cache_root = Path(tempfile.mkdtemp(prefix="t2f-bench-cache-"))  # T2F_CACHE_DIR: compile cache under it
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("t2f").setLevel(logging.INFO)  # the warm-up's line: what compiled, what the cache served
    photo, raw, tform, _ = reference_face()
    uv = UVData.load(shared_dir() / "prnet" / "uv-data")
    from gpu_report import Report

    card = torch.cuda.get_device_name(0) if args.cuda else "cpu-smoke"
    out = args.out or RESULTS / f"gpu-{re.sub(r'[^a-z0-9]+', '-', card.lower()).strip('-')}.md"
    report = Report(args, card, out=out)
    m, live = report.numbers, {}
    started = time.perf_counter()

    def section(name: str, fn: Callable[[], None]) -> None:
        if time.perf_counter() - started > args.budget_s:
            report.skipped.append(f"{name} (over the {args.budget_s:.0f} s budget)")
        else:
            try:
                began = time.perf_counter()
                fn()
                m.setdefault("section_s", {})[name] = time.perf_counter() - began
            except Exception as exc:  # one broken section must not cost the others' numbers
                traceback.print_exc()
                report.skipped.append(f"{name} failed: {first_line(exc, 160)}")
        report.write(time.perf_counter() - started)

    def setup() -> None:  # the random models, once; the eager configuration loaded from them
        m["versions"] = versions(args)
        live["saved"] = saved = save_models(args)
        m["made_s"] = saved.seconds
        live["eager_settings"] = settings = settings_of(args, saved, compiled=False)
        live["eager"] = stages_of(settings, args, raw, uv, photo)
        live["eager_service"] = service_of(settings, live["eager"])

    def files() -> None:  # one face's files on one thread, with the export helpers, then drawn by PyTorch too
        mesh = build_face_mesh(photo, restore_position_map(raw, tform), uv)
        face = FaceResult(image=photo, mesh=mesh, crop=None, box=None, faces_found=1)  # type: ignore[arg-type]
        renderer, threads = ViewRenderer(args.device), max(2, live["eager_settings"].resolved_export_threads())
        with ThreadPoolExecutor(threads) as pool:
            m["files"] = {
                "threads": threads,
                "one": measure(lambda: result_files(face), runs=args.runs)["p50"],
                "helpers": measure(lambda: result_files(face, pool=pool), runs=args.runs)["p50"],
                "drawn": measure(lambda: result_files(face, pool=pool, renderer=renderer), runs=args.runs)["p50"],
            }
        if renderer.broken:  # it logged why; numpy drew that row
            report.fell_back.append("the files row's GPU drawing (numpy drew it)")

    def eager() -> None:  # painting and PRNet eagerly; the fast profile eagerly too (DeepCache's own saving)
        service, stage = live["eager_service"], live["eager"].painter.text_to_image
        m["paint"] = {"eager": {b: paint_ms(service, stage, b, args, "quality") for b in args.buckets}}
        m["paint"]["eager fast"] = {b: paint_ms(service, stage, b, args, "fast") for b in sorted({1, args.max_batch})}
        m["prnet"] = {"eager": prnet_ms(service, live["eager"].faces.pipeline.prnet, args)}
        m["diffs"] = differences(service, stage, args)
        live["eager_images"] = {p: images(service, stage, args, p) for p in ("quality", "fast")}

    def cold() -> None:  # the fast path loaded as the bot loads it, then its warm-up into an empty cache
        live["fast_settings"] = settings = settings_of(args, live["saved"], compiled=True)
        live["fast"] = stages = stages_of(settings, args, raw, uv, photo)
        live["fast_service"] = service = service_of(settings, stages)
        m["cold"] = warm_up_s(service, stages, settings)
        live["after_warm_up"] = counters_now()
        stage = stages.painter.text_to_image
        if args.cuda and not (stage.compiled and stages.faces.pipeline.prnet.compiled):  # the warm-up logged why
            report.fell_back.append("compiling or capturing, in the warm-up (the fast rows are eager)")

    def fast() -> None:  # painting per bucket, both profiles; the decode as HEAD had it; PRNet; MTCNN
        service, stage = live["fast_service"], live["fast"].painter.text_to_image
        m["paint"]["graphs"] = {b: paint_ms(service, stage, b, args, "quality") for b in args.buckets}
        m["paint"]["graphs fast"] = {b: paint_ms(service, stage, b, args, "fast") for b in args.buckets}
        decoder, stage.decoder = stage.decoder, None  # the pipeline's own eager decode, as at HEAD
        m["paint"]["graphs, decode eager"] = {
            b: paint_ms(service, stage, b, args, "quality") for b in sorted({1, args.max_batch})
        }
        stage.decoder = decoder
        m["decode"] = decode_ms(service, stage, args)
        for profile in ("quality", "fast"):  # the compiled path against the eager one, same seeds
            gap = np.abs(images(service, stage, args, profile) - live["eager_images"][profile]).mean()
            m["diffs"][f"graphs against eager, {profile} profile"] = float(gap)
        m["prnet"]["graphs"] = prnet_ms(service, live["fast"].faces.pipeline.prnet, args)
        other = RealFacePRNet(
            raw, device=args.device, dtype=args.dtype, mode=args.mode, buckets=(1,), channels_last=not args.cuda
        )
        m["prnet"]["graphs, other layout"] = prnet_ms(service, other, args)
        if args.torch_mtcnn:
            detector = FaceCostDetector(photo, args.device)
            m["mtcnn"] = {
                size: on_gpu_thread(
                    service,
                    lambda size=size: measure(
                        lambda: detector.detect(np.zeros((size, size, 3), np.uint8)), runs=args.prnet_runs
                    )["p50"],
                )
                for size in (512, 1024)
            }

    def served(key: str, service_key: str, *, profiles: tuple[str, ...], samples: int) -> Callable[[], None]:
        def run() -> None:
            service = live[service_key]
            for profile in profiles:
                tag = f"{key[0]}{profile[0]}"
                m.setdefault("one", {})[f"{key} {profile}"] = one_member(service, args, profile=profile, tag=tag)
                m.setdefault("burst", {})[f"{key} {profile}"] = bursts(
                    service, args, profile=profile, tag=tag, samples=samples
                )
            if key == "graphs":  # every shape the service met was warmed up: nothing compiled, no graph skipped
                m["after"] = since(live["after_warm_up"])

        return run

    def warm_restart() -> None:
        m["warm"] = restart(args, live["fast_settings"], report.out.parent)

    def channels_last() -> None:  # the UNet and VAE channels-last under compile: a compile of their own
        settings = settings_of(args, live["saved"], compiled=True, channels_last="compiled")
        stages = stages_of(settings, args, raw, uv, photo)
        service = service_of(settings, stages)
        m["cl_cold"] = warm_up_s(service, stages, settings)
        stage = stages.painter.text_to_image
        m["paint"]["graphs, channels-last"] = {
            b: paint_ms(service, stage, b, args, "quality") for b in sorted({1, args.max_batch})
        }
        asyncio.run(service.shutdown())

    section("setup", setup)
    section("files", files)
    section("eager", eager)
    section("cold warm-up", cold)
    section("fast path", fast)
    section("fast path service", served("graphs", "fast_service", profiles=("quality", "fast"), samples=args.samples))
    section("warm restart", warm_restart)
    if "eager-service" not in args.skip:
        section("eager service", served("eager", "eager_service", profiles=("quality",), samples=1))
    if args.channels_last:
        section("channels-last", channels_last)
    for key in ("fast_service", "eager_service"):
        if key in live:
            asyncio.run(live[key].shutdown())


if __name__ == "__main__":
    main()
