"""Benchmark: the GPU fast path (T2F_COMPILE=graphs) against eager, in one run, in about 5 minutes.

    python bench/gpu.py                    # a CUDA host: SD v1-4 architecture with random weights, 512 px, 25 steps
    python bench/gpu.py --smoke            # the tiny test model on the CPU, 2 steps (CI runs this; ~1.5 min)

Measures, eager and fast path side by side: text-to-image per batch bucket, PRNet per bucket (eager vs
CUDA-graph replay), the job service one member at a time (submit -> files) and a 32-job burst, detection
on or off the GPU thread, and the start-up warm-up cold (empty compile cache, this process) and warm (the
same cache, a fresh process). Prints one Markdown table and writes ``bench/results/gpu-<card>.md`` (or
``--out``), rewritten after every section, so a run stopped early still leaves what it measured.

Every GPU call runs on the service's worker thread, as in the bot: CUDA graphs recorded by
``torch.compile`` belong to the thread that recorded them.

"Eager" is the service as it was before the fast path (eager UNet, detection on the GPU thread, one thread
writing files); "fast" is T2F_COMPILE=graphs with buckets, detection on its own thread and the export
threads a CUDA host gets by default (half its cores, up to 4).

A bare GPU host with torch needs, besides this checkout (run from its root with ``PYTHONPATH=.``):
``diffusers transformers safetensors huggingface_hub scikit-image scipy pillow numpy prometheus_client`` (the
versions in pyproject.toml; the H100/H200 hosts here lacked only diffusers of these), and ../shared/prnet
(UV data and a reference face; set T2F_SHARED_DIR). TensorFlow, trimesh and python-dotenv are not needed.
Detection "before" is a stand-in that takes TensorFlow MTCNN's measured time (80 ms of CPU per image on
the H200 host) and returns the middle of the image; "now" is t2f's PyTorch MTCNN on the GPU, run on a real
face photo of the painted size (random weights paint no face) before it returns the middle of the image.
It needs the ``mtcnn`` wheel (its weights) with ``joblib``, ``cloudpickle`` and ``lz4``; without them
the stand-in serves both rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
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
from models import FaceCostDetector, RealFacePRNet, StandInDetector, have_mtcnn_weights, sd14_pipeline, tiny_pipeline
from reconstruction import reference_face

from t2f.bounds import default_export_threads
from t2f.errors import first_line
from t2f.export.package import result_files
from t2f.export.render_torch import ViewRenderer
from t2f.faces import FaceRequest, FaceResult
from t2f.serve.faces import FaceFinder
from t2f.serve.files import FileWriter
from t2f.serve.jobs import JobRequest
from t2f.serve.paint import Painter
from t2f.serve.route import Route
from t2f.serve.service import JobService
from t2f.serve.warmup import LocalStages, warm_up
from t2f.stages.compiling import buckets_for, cache_counters, use_compile_cache
from t2f.stages.pipeline import FacePipeline
from t2f.stages.prnet.model import PRNet
from t2f.stages.prnet.postprocess import build_face_mesh, restore_position_map
from t2f.stages.prnet.uv import UVData
from t2f.stages.sd_pipeline import compile_pipeline, compile_single, prepare_pipeline
from t2f.stages.text2img import TextToImage

RESULTS = Path(__file__).resolve().parent / "results"
MTCNN_S = 0.080  # MTCNN's CPU time per image on the H200 host (../shared/docs/gpu-measurements.md)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build(args: argparse.Namespace, raw: np.ndarray, uv: UVData) -> LocalStages:
    """The production stages around the bench model: fp16 on CUDA, no channels-last, no fused QKV (the defaults)."""
    pipe = tiny_pipeline() if args.smoke else sd14_pipeline()
    pipe = prepare_pipeline(pipe, device=args.device, dtype=args.dtype, scheduler="dpmpp")
    stage = TextToImage(pipe, device=args.device, dtype=args.dtype, model="bench")
    prnet = RealFacePRNet(raw, device=args.device, dtype=args.dtype, mode="off", buckets=())
    pipeline = FacePipeline(prnet=prnet, uv=uv, text_to_image=stage)
    return LocalStages(painter=Painter(stage), faces=FaceFinder(pipeline, crop="whole"), files=FileWriter())


def service_of(stages: LocalStages, args: argparse.Namespace, *, faces_thread: bool, files_threads: int) -> JobService:
    """The job service around ``stages``: faces on the GPU thread or their own, ``files_threads`` writing files."""
    route = Route(
        paint=stages.painter,
        faces=stages.faces,
        files=stages.files,
        faces_thread=faces_thread,
        files_threads=files_threads,
    )
    return JobService(route, max_batch=args.max_batch, capacity=1000, job_timeout_s=3600)


def make_fast(stages: LocalStages, raw: np.ndarray, args: argparse.Namespace) -> None:
    """Compile the UNet in ``args.mode``, pad batches to the buckets and graph PRNet, as ``T2F_COMPILE`` does."""
    stage = stages.painter.text_to_image
    compile_pipeline(stage.pipeline, args.mode)
    stage.buckets, stage.single_unet = args.buckets, compile_single(stage.pipeline, args.mode)
    stages.faces.pipeline.prnet = fast_prnet(raw, args, channels_last=args.cuda)  # T2F_CHANNELS_LAST=auto on CUDA


def fast_prnet(raw: np.ndarray, args: argparse.Namespace, *, channels_last: bool) -> RealFacePRNet:
    return RealFacePRNet(
        raw, device=args.device, dtype=args.dtype, mode=args.mode, buckets=args.buckets, channels_last=channels_last
    )


def requests(count: int, args: argparse.Namespace) -> list[FaceRequest]:
    return [FaceRequest(f"a portrait photo {i}", seed=i, steps=args.steps, size=args.size) for i in range(count)]


def on_gpu_thread(service: JobService, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the service's GPU thread (where the bot runs every model call) and wait for it."""
    return service.gpu.submit(fn).result()


def paint_ms(service: JobService, stage: TextToImage, count: int, args: argparse.Namespace) -> float:
    def run() -> None:
        stage.generate_batch(requests(count, args))
        sync(args.device)

    return on_gpu_thread(service, lambda: measure(run, runs=args.runs if count == 1 else max(2, args.runs - 2)))["p50"]


def prnet_ms(service: JobService, prnet: PRNet, count: int, args: argparse.Namespace) -> float:
    crops = np.random.default_rng(0).random((count, 256, 256, 3), dtype=np.float32)
    return on_gpu_thread(service, lambda: measure(lambda: PRNet.predict(prnet, crops), runs=args.prnet_runs, warmup=2))[
        "p50"
    ]


async def serve(service: JobService, args: argparse.Namespace, *, burst: int, tag: str) -> dict[str, float]:
    """Submit -> files: one job at a time (``burst`` 0, ``args.singles`` jobs) or ``burst`` jobs at once."""
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}  # seconds per stage of each face's report (one at a time only)
    start = time.perf_counter()
    for wave in [[i] for i in range(args.singles)] if burst == 0 else [list(range(burst))]:
        submitted = time.perf_counter()
        handles = []
        for i in wave:
            face = FaceRequest(f"a portrait photo {i}", seed=i, steps=args.steps, size=args.size)
            handle = service.submit(JobRequest(f"{tag}{burst:03d}{i:06d}", i, face))
            handle.result.add_done_callback(lambda _, t=submitted: latencies.append(time.perf_counter() - t))
            handles.append(handle)
        results = await asyncio.gather(*(h.result for h in handles))
        assert all(r.status == "done" for r in results), [r.user_message for r in results]
        for result in results if burst == 0 else []:
            for name, seconds in (result.report.timings_s if result.report else {}).items():
                stages.setdefault(name, []).append(seconds)
    total = time.perf_counter() - start
    return {
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "per_min": len(latencies) / total * 60,
        "stages": {name: float(np.median(values)) for name, values in stages.items()},
    }


def service_numbers(service: JobService, args: argparse.Namespace, tag: str) -> dict[str, dict[str, float]]:
    async def both() -> dict[str, dict[str, float]]:
        one = await serve(service, args, burst=0, tag=tag)
        return {"one": one, "burst": await serve(service, args, burst=args.burst, tag=tag)}

    return asyncio.run(both())


class LastLine(logging.Handler):
    """Keeps the last message logged to it."""

    said = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.said = record.getMessage()


def warm_up_s(service: JobService, stages: LocalStages, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds of the start-up warm-up on the worker thread, the compile cache's hits and misses during it,
    and the warm-up's log line (where its time went)."""
    before, lines = cache_counters(), LastLine()
    logging.getLogger("t2f.serve.warmup").addHandler(lines)
    started = time.perf_counter()
    try:
        on_gpu_thread(
            service,
            lambda: (warm_up(stages, args.size, max_batch=args.max_batch, compile_mode=args.mode), sync(args.device)),
        )
    finally:
        logging.getLogger("t2f.serve.warmup").removeHandler(lines)
    seconds = time.perf_counter() - started
    hits, misses = (now - then for now, then in zip(cache_counters(), before, strict=True))
    return {"seconds": seconds, "hits": hits, "misses": misses, "line": lines.said}


def child_warm_up(args: argparse.Namespace, raw: np.ndarray, uv: UVData) -> None:
    """A restart: a fresh process, the same cache folder; prints the warm-up's numbers as JSON."""
    cache = use_compile_cache(args.cache)
    stages = build(args, raw, uv)
    make_fast(stages, raw, args)
    stages.files.draw_on(args.device if args.cuda else None)  # as the parent: the kept batch times' key names it
    stages.painter.text_to_image.compile_cache = cache  # the warm-up's log line names it, as in the bot
    service = service_of(stages, args, faces_thread=args.cuda, files_threads=1)
    print(json.dumps({**warm_up_s(service, stages, args), "files_before": cache.files_before}))
    service.gpu.shutdown()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, CPU, 2 steps: a CI smoke test")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--out", type=Path, help="default: bench/results/gpu-<card>.md")
    parser.add_argument("--cache", type=Path, help="compile cache folder (default: a fresh temporary one)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip the sections that would start later")
    parser.add_argument("--deadline-s", type=float, help="seconds from the start: the restart child is stopped then")
    parser.add_argument("--singles", type=int, default=10, help="jobs sent one at a time per service row")
    parser.add_argument("--skip", default="", help="comma-separated: eager-service, detect-serial (a short lease)")
    parser.add_argument(
        "--graphs-single",
        action="store_true",
        help="the fast path as T2F_COMPILE=graphs-single: a static graph for one face alone",
    )
    parser.add_argument("--child-warm-up", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.began = time.monotonic()  # --deadline-s counts from here
    cuda = torch.cuda.is_available() and not args.smoke
    args.cuda = cuda
    args.device, args.dtype = ("cuda", torch.float16) if cuda else ("cpu", torch.float32)
    args.mode = ("graphs-single" if args.graphs_single else "graphs") if cuda else "off"  # the smoke test: eager
    args.size, args.steps, args.runs, args.prnet_runs = (512, 25, 5, 20) if not args.smoke else (64, 2, 2, 2)
    args.singles, args.burst = (args.singles, 32) if not args.smoke else (2, 4)
    args.skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    args.max_batch = min(args.max_batch, 2) if args.smoke else args.max_batch
    args.buckets = buckets_for(args.max_batch)
    args.export_threads = default_export_threads(on_gpu=cuda)  # what T2F_EXPORT_THREADS=0 gives this host
    args.file_threads = max(2, args.export_threads)  # the files row: helpers even on a 2-core smoke run
    args.detect_s = MTCNN_S if cuda else 0.01
    args.torch_mtcnn = have_mtcnn_weights()
    args.cache = args.cache or Path(tempfile.mkdtemp(prefix="t2f-compile-"))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("t2f").setLevel(logging.INFO)  # the warm-up's line: what compiled, what the cache served
    image, raw, tform, _ = reference_face()
    uv = UVData.load(shared_dir() / "prnet" / "uv-data")
    if args.child_warm_up:
        return child_warm_up(args, raw, uv)
    from gpu_report import Report

    card = torch.cuda.get_device_name(0) if args.cuda else "cpu-smoke"
    report = Report(
        args, card, out=args.out or RESULTS / f"gpu-{re.sub(r'[^a-z0-9]+', '-', card.lower()).strip('-')}.md"
    )
    started = time.perf_counter()

    def section(name: str, fn: Callable[[], None]) -> None:
        if time.perf_counter() - started > args.budget_s:
            report.skipped.append(f"{name} (over the {args.budget_s:.0f} s budget)")
        else:
            try:
                fn()
            except Exception as exc:  # one broken section must not cost the others' numbers
                traceback.print_exc()
                report.skipped.append(f"{name} failed: {first_line(exc, 160)}")
        report.write(time.perf_counter() - started)

    def files() -> None:  # one face's files on one thread, with the export helpers, then drawn by PyTorch too
        mesh = build_face_mesh(image, restore_position_map(raw, tform), uv)
        face = FaceResult(image=image, mesh=mesh, crop=None, box=None, faces_found=1)  # type: ignore[arg-type]
        renderer = ViewRenderer(args.device)
        with ThreadPoolExecutor(args.file_threads) as pool:
            m["files"] = {
                1: measure(lambda: result_files(face), runs=args.runs)["p50"],
                args.file_threads: measure(lambda: result_files(face, pool=pool), runs=args.runs)["p50"],
                "drawn": measure(lambda: result_files(face, pool=pool, renderer=renderer), runs=args.runs)["p50"],
            }
        if renderer.broken:  # it logged why; numpy drew that row
            report.fell_back.append("the files row's GPU drawing (numpy drew it)")

    m = report.numbers
    section("files", files)
    stages = build(args, raw, uv)
    stage, faces = stages.painter.text_to_image, stages.faces
    eager_service = service_of(stages, args, faces_thread=False, files_threads=1)  # detection on the GPU thread

    def eager() -> None:  # 1. before the fast path: eager, detection on the GPU thread, one export thread
        m["eager_paint"] = {b: paint_ms(eager_service, stage, b, args) for b in args.buckets}
        m["eager_prnet"] = {b: prnet_ms(eager_service, faces.pipeline.prnet, b, args) for b in args.buckets}
        m["eager_image"] = on_gpu_thread(eager_service, lambda: stage.generate_batch(requests(1, args))[0].image)
        if "eager-service" not in args.skip:
            m["eager_service"] = service_numbers(eager_service, args, "e")

    section("eager", eager)
    asyncio.run(eager_service.shutdown())

    # 2. The fast path as the bot starts it: cache, compile, warm-up over every bucket x guidance (cold).
    if args.export_threads > 1:  # what T2F_EXPORT_THREADS gives t2f.build's stages: helpers for each face's parts
        stages.files.parts_pool = ThreadPoolExecutor(args.export_threads, thread_name_prefix="t2f-files")
    stages.files.draw_on(args.device if args.cuda else None)  # as t2f.build's stages: the GPU draws
    fast_service = service_of(stages, args, faces_thread=True, files_threads=args.export_threads)

    def cold() -> None:
        cache = use_compile_cache(args.cache)
        make_fast(stages, raw, args)
        stage.compile_cache = cache  # as t2f.build: the warm-up keeps its batch times there for the restart
        m["cold"] = warm_up_s(fast_service, stages, args)
        if args.cuda and not (stage.compiled and faces.pipeline.prnet.compiled):  # the warm-up logged why
            report.fell_back.append("compiling or capturing, in the warm-up (the fast rows are eager)")

    def fast() -> None:
        compiled_before = sum(cache_counters())
        m["fast_paint"] = {b: paint_ms(fast_service, stage, b, args) for b in args.buckets}
        m["fast_prnet"] = {b: prnet_ms(fast_service, faces.pipeline.prnet, b, args) for b in args.buckets}
        other = fast_prnet(raw, args, channels_last=not args.cuda)  # the other memory format, for the choice
        m["fast_prnet_other"] = {b: prnet_ms(fast_service, other, b, args) for b in args.buckets}
        image = on_gpu_thread(fast_service, lambda: stage.generate_batch(requests(1, args))[0].image)
        if "eager_image" in m:
            m["image_diff"] = float(np.abs(image.astype(np.float32) - m["eager_image"].astype(np.float32)).mean())
        m["fast_service"] = service_numbers(fast_service, args, "f")
        m["recompiles"] = sum(cache_counters()) - compiled_before  # the warm-up covered every shape: 0
        if stages.files.renderer is not None and stages.files.renderer.broken:
            report.fell_back.append("the fast service's GPU drawing (numpy drew its files)")

    def detection() -> None:  # before: the stand-in on the GPU thread; now: PyTorch MTCNN on its own thread
        faces.crop = "detect"
        if "detect-serial" not in args.skip:
            faces.pipeline.detector = StandInDetector(args.detect_s)
            serial = service_of(stages, args, faces_thread=False, files_threads=args.export_threads)
            m["detect_serial"] = service_numbers(serial, args, "s")
            asyncio.run(serial.shutdown())
        if args.torch_mtcnn:
            detector = FaceCostDetector(image, args.device)
            m["mtcnn"] = {
                size: on_gpu_thread(
                    fast_service,
                    lambda size=size: measure(
                        lambda: detector.detect(np.zeros((size, size, 3), np.uint8)), runs=args.prnet_runs
                    )["p50"],
                )
                for size in (512, 1024)
            }
        faces.pipeline.detector = detector if args.torch_mtcnn else StandInDetector(args.detect_s)
        m["detect_overlap"] = service_numbers(fast_service, args, "o")

    section("cold warm-up", cold)
    section("fast path", fast)
    section("detection", detection)
    asyncio.run(fast_service.shutdown())

    def restart() -> None:  # 3. a fresh process with the cache this run filled
        child = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child-warm-up",
            "--cache",
            str(args.cache),
            "--max-batch",
            str(args.max_batch),
            *(["--smoke"] if args.smoke else []),
            *(["--graphs-single"] if args.graphs_single else []),
        ]
        began = time.perf_counter()
        left = None if args.deadline_s is None else args.deadline_s - (time.monotonic() - args.began)
        with (report.out.parent / "restart.log").open("w") as log:  # the child's own log, for a failed restart
            try:
                printed, ended = (
                    subprocess.run(child, stdout=subprocess.PIPE, stderr=log, text=True, timeout=left).stdout,
                    "exited",
                )
            except subprocess.TimeoutExpired as stopped:  # its numbers may be out already, its exit hung
                output = stopped.output or ""
                printed, ended = output if isinstance(output, str) else output.decode(), "stopped at the deadline"
        said = [line for line in printed.splitlines() if line.startswith("{")]
        if not said:
            report.skipped.append(f"warm restart ({ended} after {time.perf_counter() - began:.0f} s, no numbers)")
            return
        m["warm"] = {**json.loads(said[-1]), "process_s": time.perf_counter() - began}

    section("warm restart", restart)


if __name__ == "__main__":
    main()
