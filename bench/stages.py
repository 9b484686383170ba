"""Benchmark: every stage of a /face job, p50/p95 and peak memory.

    .venv/bin/python bench/stages.py                      # CPU, tiny random SD, 512 px
    .venv/bin/python bench/stages.py --model sd14 --device cuda --out bench/results/stages-cuda.md

On CUDA use ``--model sd14``: the real SD v1-4 architecture with random weights (same compute).
Baselines measured in the same run: fp32 (vs fp16 on CUDA), PNDM 50 steps (vs DPM-Solver++ 25).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from skimage.data import astronaut

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, measure, peak_rss_mib, publish, table
from models import text_to_image
from reconstruction import reference_face

from t2f.export.glb import glb_bytes
from t2f.export.obj import obj_bytes
from t2f.export.preview import preview_strip
from t2f.faces import FaceRequest
from t2f.files.outputs import jpeg_bytes
from t2f.stages.detect import FaceDetector
from t2f.stages.prnet.checkpoint import PRNetConfig
from t2f.stages.prnet.model import PRNet
from t2f.stages.prnet.network import ResFCN256
from t2f.stages.prnet.postprocess import build_face_mesh, restore_position_map
from t2f.stages.sd_pipeline import make_scheduler


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def diffusion_rows(kind: str, device: str, dtype: torch.dtype, size: int, runs: int, label: str) -> list[list[str]]:
    stage = text_to_image(kind, device=device, dtype=dtype, speedups=device.startswith("cuda"))
    pipe = stage.pipeline
    rows = []

    def encode() -> None:
        pipe.encode_prompt("a portrait photo of a smiling woman", device, 1, True, "")
        sync(device)

    latents = torch.randn(2, 4, size // 8, size // 8, device=device, dtype=dtype)
    embeddings = torch.cat(pipe.encode_prompt("a face", device, 1, True, "")[::-1])  # uncond + cond, as CFG runs them

    @torch.no_grad()
    def unet_step() -> None:
        pipe.unet(latents, 500, encoder_hidden_states=embeddings)
        sync(device)

    @torch.no_grad()
    def vae_decode() -> None:
        pipe.vae.decode(latents[:1] / pipe.vae.config.scaling_factor)
        sync(device)

    for name, fn in (
        ("text encoding", encode),
        ("denoising step (UNet, CFG batch 2)", unet_step),
        ("VAE decode", vae_decode),
    ):
        stat = measure(torch.no_grad()(fn), runs=runs)
        rows.append([f"{name} [{label}]", f"{stat['p50']:.1f}", f"{stat['p95']:.1f}"])
    for steps, scheduler in ((25, "dpmpp"), (50, "pndm")):
        stage.pipeline.scheduler = make_scheduler(scheduler, stage.pipeline.scheduler.config)

        def whole(steps: int = steps) -> None:
            stage.generate(FaceRequest("a portrait photo of a face", seed=1, steps=steps, size=size))
            sync(device)

        stat = measure(whole, runs=max(2, runs // 4))
        rows.append(
            [
                f"text-to-image, {scheduler} {steps} steps, {size} px [{label}]",
                f"{stat['p50']:.1f}",
                f"{stat['p95']:.1f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "sd14"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    rows = []
    if cuda:
        rows += diffusion_rows(args.model, args.device, torch.float16, args.size, args.runs, "fp16 + speed-ups")
    rows += diffusion_rows(
        args.model, args.device, torch.float32, args.size, args.runs, "fp32, no speed-ups" if cuda else "fp32"
    )
    by_name = {row[0]: float(row[1]) for row in rows}
    ours = next(v for k, v in by_name.items() if "dpmpp 25" in k)
    naive = next(v for k, v in by_name.items() if "pndm 50" in k and "fp32" in k)
    ratio = (
        "Text-to-image, ours (first dpmpp-25 row) vs the naive path (fp32, PNDM 50 steps), same run: "
        f"{naive / ours:.2f}x."
    )

    photo = astronaut()
    for engine in ("tensorflow", "torch"):  # the same weights; both on the CPU here
        detector = FaceDetector(engine=engine)
        stat = measure(lambda detector=detector: detector.largest_face(photo), runs=args.runs)
        rows.append([f"face detection (MTCNN on {engine}, 512 px, CPU)", f"{stat['p50']:.1f}", f"{stat['p95']:.1f}"])

    crops = np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32)
    precisions = [(torch.float16, True), (torch.float32, False)] if cuda else [(torch.float32, False)]
    for dtype, fast in precisions:
        prnet = PRNet(ResFCN256().eval(), PRNetConfig(), device=args.device, dtype=dtype, channels_last=fast)

        def forward(prnet: PRNet = prnet) -> None:
            prnet.predict(crops)
            sync(args.device)

        stat = measure(forward, runs=args.runs, warmup=2)
        rows.append([f"PRNet forward, batch 1, {str(dtype)[6:]}", f"{stat['p50']:.1f}", f"{stat['p95']:.1f}"])

    image, raw, tform, uv = reference_face()
    mesh = build_face_mesh(image, restore_position_map(raw, tform), uv)
    for name, fn in (
        ("post-processing", lambda: build_face_mesh(image, restore_position_map(raw, tform), uv)),
        ("OBJ writing", lambda: obj_bytes(mesh)),
        ("GLB writing", lambda: glb_bytes(mesh)),
        ("preview rendering + JPEG", lambda: jpeg_bytes(preview_strip(image, mesh))),
    ):
        stat = measure(fn, runs=args.runs)
        rows.append([name, f"{stat['p50']:.1f}", f"{stat['p95']:.1f}"])

    memory = f"Peak RSS {peak_rss_mib():.0f} MiB"
    if cuda:
        memory += f"; CUDA max allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    model = "SD v1-4 architecture, random weights" if args.model == "sd14" else "tiny random SD from the test suite"
    report = "\n\n".join(
        [
            "# Stage benchmark",
            f"Machine: {machine()}. Model: {model}, device {args.device}, {args.runs} runs per row after a warm-up; "
            "times in milliseconds.",
            table(["stage", "p50 ms", "p95 ms"], rows),
            ratio,
            memory + ".",
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
