"""Benchmark: the fast path's three headline numbers on a CUDA host in about 2 minutes.

    PYTHONPATH=. python bench/gpu_quick.py

PRNet.predict at batch 1 (eager vs CUDA graph), text-to-image at batch 1 (eager vs ``T2F_COMPILE=graphs``,
SD v1-4 architecture with random weights, 512 px, DPM-Solver++ 25 steps, fp16) with the compile's own
time, then a fresh process loading the same UNet from the compile cache this run filled (a restart).
What a short lease allows when bench/gpu.py's full table does not fit; same wheels as bench/gpu.py.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure
from models import sd14_pipeline

from t2f.faces import FaceRequest
from t2f.stages.compiling import cache_counters, use_compile_cache
from t2f.stages.prnet.checkpoint import PRNetConfig
from t2f.stages.prnet.model import PRNet
from t2f.stages.prnet.network import ResFCN256
from t2f.stages.sd_pipeline import compile_pipeline, prepare_pipeline
from t2f.stages.text2img import TextToImage


def painter() -> TextToImage:
    pipe = prepare_pipeline(sd14_pipeline("cuda"), device="cuda", dtype=torch.float16, scheduler="dpmpp")
    return TextToImage(pipe, device="cuda", dtype=torch.float16, model="bench")


def paint(stage: TextToImage, steps: int) -> None:
    stage.generate_batch([FaceRequest("a portrait photo", seed=0, steps=steps, size=512)])
    torch.cuda.synchronize()


def compiled_first_call_s(stage: TextToImage, steps: int) -> float:
    """Compile the UNet for graphs at bucket 1 and time its first call (the compile, or the cache's load)."""
    compile_pipeline(stage.pipeline, "graphs")
    stage.buckets = (1,)
    began = time.perf_counter()
    paint(stage, steps)
    return time.perf_counter() - began


def restart(cache: Path) -> None:
    """The child: build the model, compile from the cache, time the first (2-step) call."""
    use_compile_cache(cache)
    began = time.perf_counter()
    stage = painter()
    print(f"building the random model: {time.perf_counter() - began:.1f} s")
    took = compiled_first_call_s(stage, 2)
    hits, misses = cache_counters()
    print(f"restart, compile from the cache + first call: {took:.1f} s ({hits} graphs loaded, {misses} compiled)")


def main() -> None:
    if sys.argv[1:2] == ["--restart"]:
        return restart(Path(sys.argv[2]))
    cache = use_compile_cache(Path(tempfile.mkdtemp(prefix="t2f-compile-"))).folder
    crops = np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32)
    for mode in ("off", "graphs"):
        prnet = PRNet(
            ResFCN256().eval(), PRNetConfig(), device="cuda", dtype=torch.float16, compile_mode=mode, buckets=(1,)
        )
        took = measure(lambda net=prnet: net.predict(crops), runs=50, warmup=3)["p50"]
        print(f"PRNet.predict batch 1, {mode}: {took:.2f} ms")
    stage = painter()
    print(f"text-to-image batch 1, eager: {measure(lambda: paint(stage, 25), runs=5)['p50']:.1f} ms")
    print(f"compile + first call: {compiled_first_call_s(stage, 25):.1f} s")
    print(f"text-to-image batch 1, graphs: {measure(lambda: paint(stage, 25), runs=5)['p50']:.1f} ms")
    subprocess.run([sys.executable, __file__, "--restart", str(cache)], check=True)


if __name__ == "__main__":
    main()
