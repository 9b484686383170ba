"""bench/gpu.py's set-up: the random models made once and saved, the settings of each configuration, the
stages loaded through the bot's own code, the software versions and dynamo's counters.

The random SD v1-4 pipeline (and its safety checker) is made once, on the GPU, and saved: every configuration
here, and the restarted process (bench/gpu_restart.py), loads it from disk with ``t2f.build`` as the bot does,
so the compiled graphs the restart finds in the cache are the ones this run compiled.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import shared_dir
from models import FaceCostDetector, RealFacePRNet, RepaintingDetector, StandInDetector, sd14_pipeline

from t2f.build import framing, gate_limits, load_text_to_image
from t2f.config import Settings
from t2f.serve.warmup import LocalStages
from t2f.stages.detect import FaceDetector
from t2f.stages.pipeline import FacePipeline
from t2f.stages.prnet.uv import UVData


@dataclasses.dataclass(frozen=True)
class Saved:
    """Where the run's random models are: the SD pipeline (``save_pretrained``) and a PRNet folder."""

    model: Path
    prnet: Path
    seconds: float  # making and saving them


def save_models(args: argparse.Namespace) -> Saved:
    """Make the random pipeline once (on the GPU when there is one) and save it, in the run's dtype, with its
    safety checker; and a PRNet folder of random weights and the real UV data."""
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="t2f-bench-models-"))
    if args.smoke:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny_models import build_tiny_sd_pipeline

        # Its checker flags nothing (force_nsfw off): the bench times it, it does not test it.
        model = build_tiny_sd_pipeline(root / "sd", with_safety_checker=True, force_nsfw=False)
    else:
        pipe = sd14_pipeline(args.device, safety_checker=True).to(dtype=args.dtype)
        pipe.save_pretrained(root / "sd")
        del pipe
        model = root / "sd"
        if args.cuda:
            torch.cuda.empty_cache()
    prnet = root / "prnet"
    save_random_prnet(prnet)
    return Saved(model=model, prnet=prnet, seconds=time.perf_counter() - started)


def save_random_prnet(folder: Path) -> None:
    """A PRNet folder as ``t2f prnet import`` leaves it, with random weights (as tests/conftest.py makes one
    where TensorFlow is missing) and the real UV data."""
    from safetensors.torch import save_file

    from t2f.files.outputs import json_bytes
    from t2f.stages.prnet.assets import PRNetAssets, install_uv_data
    from t2f.stages.prnet.checkpoint import CONFIG_FILE, WEIGHTS_FILE, PRNetConfig, file_sha256
    from t2f.stages.prnet.network import ResFCN256

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    state = {k: v for k, v in ResFCN256().state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    config = PRNetConfig(sha256=file_sha256(folder / WEIGHTS_FILE), source="random (bench)")
    (folder / CONFIG_FILE).write_bytes(json_bytes(dataclasses.asdict(config)))
    install_uv_data(folder, assets=PRNetAssets(), source=shared_dir() / "prnet" / "uv-data")


def settings_of(args: argparse.Namespace, saved: Saved, *, compiled: bool, channels_last: str = "auto") -> Settings:
    """The bot's settings for one configuration: eager, or ``args.mode`` with the decode compiled and the fast
    profile configured (a member's ``fast`` jobs use it; ``quality`` ones do not)."""
    return Settings(
        model=str(saved.model),
        prnet_dir=str(saved.prnet),
        device=args.device,
        dtype=str(args.dtype).removeprefix("torch."),
        steps=args.steps,
        image_size=args.size,
        max_batch=args.max_batch,
        compile_mode=args.mode if compiled else "off",
        compile_vae=compiled,
        channels_last=channels_last,
        fast_steps=args.fast_steps,
        karras_sigmas=True,
        deepcache_interval=args.deepcache_interval,
        deepcache_branch=args.deepcache_branch,
        face_crop="detect" if args.torch_mtcnn else "whole",
        cache_dir=args.cache_root,
        warmup=True,
    )


def detector_of(args: argparse.Namespace, photo: np.ndarray) -> FaceDetector:
    """PyTorch MTCNN at its real cost (on a face photo: random weights paint noise), or the stand-in's time;
    one image in ``args.repaint_every`` then finds no face, so the gate repaints it."""
    inner = FaceCostDetector(photo, args.device) if args.torch_mtcnn else StandInDetector(args.detect_s)
    return RepaintingDetector(inner, every=args.repaint_every)


def stages_of(
    settings: Settings, args: argparse.Namespace, raw: np.ndarray, uv: UVData, photo: np.ndarray
) -> LocalStages:
    """The route's stages for ``settings``: the painter loaded by ``t2f.build`` (as the bot loads it), PRNet's
    network at full cost answering with a real face's map, the bench's detector behind the bot's face gate,
    and the files written and drawn as the bot's."""
    stage = load_text_to_image(settings)
    prnet = RealFacePRNet(
        raw,
        device=args.device,
        dtype=args.dtype,
        mode=settings.compile_mode,
        buckets=(1,),  # the faces stage rebuilds one face at a time
        channels_last=settings.prnet_channels_last(),
    )
    pipeline = FacePipeline(prnet=prnet, uv=uv, detector=detector_of(args, photo), text_to_image=stage)
    return LocalStages.around(
        pipeline,
        gate=gate_limits(settings),
        framing=framing(settings),
        parts_threads=settings.resolved_export_threads(),
        render_device=args.device if args.cuda else None,
    )


def versions(args: argparse.Namespace) -> dict[str, str]:
    """What ran: the card and its driver, CUDA and cuDNN as torch sees them, the libraries, Python."""
    found = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("diffusers", "transformers", "numpy"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    if args.cuda:
        found["card"] = torch.cuda.get_device_name(0)
        found["cuda"] = str(torch.version.cuda)
        found["cudnn"] = str(torch.backends.cudnn.version())
        try:
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            found["driver"] = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            found["driver"] = "unknown"
    return found


def counters_now() -> dict[str, int]:
    """Dynamo's and inductor's process-wide counters this bench reads: frames compiled (a recompile is one more),
    graph breaks, compiled graphs, FX-graph cache hits and misses, and CUDA graphs skipped (a graph inductor
    ran without CUDA graphs, and said why in the log)."""
    from torch._dynamo.utils import counters

    return {
        "frames": int(counters["frames"]["ok"]),
        "breaks": int(sum(counters["graph_break"].values())),
        "graphs": int(counters["stats"]["unique_graphs"]),
        "hits": int(counters["inductor"]["fxgraph_cache_hit"]),
        "misses": int(counters["inductor"]["fxgraph_cache_miss"]),
        "skips": int(counters["inductor"]["cudagraph_skips"]),
    }


def since(before: dict[str, int]) -> dict[str, int]:
    """The counters' growth since ``before``."""
    return {name: value - before.get(name, 0) for name, value in counters_now().items()}


def sync(args: argparse.Namespace) -> None:
    if args.cuda:
        torch.cuda.synchronize()


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``T2F_*`` variables that make them (for the restarted process to read as the bot does)."""
    env = {}
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif isinstance(value, tuple):
            text = ",".join(map(str, value))
        else:
            text = "" if value is None else str(value)
        env[field.metadata["env"]] = text
    return env
