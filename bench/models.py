"""Models for benchmarks: the real Stable Diffusion v1-4 architecture with random weights, or the test suite's tiny one.

Random weights cost exactly the same compute as the trained ones, so timings are real; images are noise.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from t2f.faces import FaceBox
from t2f.serve.inline import through_route
from t2f.serve.jobs import FaceJob, Outcome
from t2f.serve.route import Route, Watch
from t2f.serve.warmup import LocalStages
from t2f.stages.detect import FaceDetector
from t2f.stages.prnet.checkpoint import PRNetConfig
from t2f.stages.prnet.model import PRNet
from t2f.stages.prnet.network import ResFCN256
from t2f.stages.sd_pipeline import prepare_pipeline
from t2f.stages.text2img import TextToImage

ROOT = Path(__file__).resolve().parents[1]
SD14_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    steps_offset=1,
    set_alpha_to_one=False,
    skip_prk_steps=True,
)


def sd14_pipeline(device: str = "cpu", *, safety_checker: bool = False) -> Any:
    """StableDiffusionPipeline with SD v1-4's published component configs (UNet 860 M, VAE 84 M, CLIP ViT-L/14 text),
    its random weights made on ``device`` (seconds on a GPU, where the CPU takes half a minute), with the safety
    checker's real architecture too when asked (:func:`sd14_safety_checker`)."""
    with torch.device(device):
        return _sd14_pipeline(safety_checker)


def _sd14_pipeline(with_checker: bool) -> Any:
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import write_minimal_clip_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=2,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=512,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
        )
    )
    folder = Path(tempfile.mkdtemp(prefix="t2f-bench-tokenizer-"))
    write_minimal_clip_tokenizer(folder)  # the prompt is padded to 77 tokens whatever the vocabulary
    tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=77)
    checker, extractor = sd14_safety_checker() if with_checker else (None, None)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler(**SD14_SCHEDULER),
        safety_checker=checker,
        feature_extractor=extractor,
        requires_safety_checker=with_checker,
    )


def sd14_safety_checker() -> tuple[Any, Any]:
    """SD v1-4's safety checker (CLIP ViT-L/14 vision tower, 24 layers at 224 px) with random weights, and its
    feature extractor (CLIP's preprocessing at 224 px). Its concept embeddings start as ones, so no cosine
    similarity reaches their thresholds: it flags nothing, at the real checker's cost."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    vision = dict(
        hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, image_size=224
    )
    text = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12)
    config = CLIPConfig(
        text_config=text, vision_config={**vision, "patch_size": 14, "projection_dim": 768}, projection_dim=768
    )
    return StableDiffusionSafetyChecker(config).eval(), CLIPImageProcessor()


def tiny_pipeline() -> Any:
    from diffusers import StableDiffusionPipeline

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import build_tiny_sd_pipeline

    folder = build_tiny_sd_pipeline(Path(tempfile.mkdtemp(prefix="t2f-bench-")) / "tiny-sd", with_safety_checker=False)
    return StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)


def text_to_image(
    kind: str,
    *,
    device: str,
    dtype: torch.dtype,
    scheduler: str = "dpmpp",
    speedups: bool = True,
    compile_mode: bool | str = False,
) -> TextToImage:
    """A TextToImage stage around ``sd14`` or ``tiny``, prepared exactly as ``from_pretrained`` prepares one."""
    pipeline = prepare_pipeline(
        sd14_pipeline() if kind == "sd14" else tiny_pipeline(),
        device=device,
        dtype=dtype,
        scheduler=scheduler,
        channels_last=speedups,
        fuse_qkv=speedups,
        compile_mode=compile_mode,
    )
    name = "SD v1-4 architecture, random weights" if kind == "sd14" else "tiny random SD (test fixture)"
    return TextToImage(pipeline, device=device, dtype=dtype, model=name)


class RealFacePRNet(PRNet):
    """PRNet's network at its full cost (random weights), answering with a real face's position map.

    Random weights cost the same compute, but their output is no face (PyTorch's default initialisation
    even puts every vertex on one point), which would make post-processing, the preview and the
    exports unrealistically cheap. ``raw`` is PRNet's real output for one AFLW2000 photo.
    """

    def __init__(
        self,
        raw: np.ndarray,
        *,
        device: str,
        dtype: torch.dtype,
        channels_last: bool = False,
        mode: str = "off",
        buckets: tuple[int, ...] = (),
    ) -> None:
        super().__init__(
            ResFCN256().eval(),
            PRNetConfig(),
            device=device,
            dtype=dtype,
            channels_last=channels_last,
            compile_mode=mode,
            buckets=buckets,
        )
        self.raw = raw

    def predict(self, crops: np.ndarray) -> np.ndarray:
        super().predict(crops)  # the real forward pass, timed with the rest
        return np.repeat(self.raw[None], len(crops), axis=0)


class StandInDetector(FaceDetector):
    """MTCNN's time without TensorFlow: waits ``seconds`` (TF's kernels release the GIL too) and finds one
    face in the middle of the image. Not a detector: it stands for one's cost in the service's timing."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.min_confidence = 0.9

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        time.sleep(self.seconds)
        h, w = image.shape[:2]
        return [FaceBox(w * 0.2, h * 0.15, w * 0.8, h * 0.85, 0.99)]


class FaceCostDetector(FaceDetector):
    """t2f's PyTorch MTCNN at its real cost: each call runs the cascade on a face photo of the image's size
    (the painted image is noise with random weights) and finds one face in the middle of the image."""

    def __init__(self, photo: np.ndarray, device: str) -> None:
        super().__init__(engine="torch", device=device)
        self.photo = photo
        self.photos: dict[tuple[int, int], np.ndarray] = {}

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        h, w = image.shape[:2]
        if (h, w) not in self.photos:
            self.photos[h, w] = np.asarray(Image.fromarray(self.photo).resize((w, h), Image.Resampling.BILINEAR))
        if not super().detect(self.photos[h, w]):
            raise RuntimeError("MTCNN found no face in the reference photo")
        return [FaceBox(w * 0.2, h * 0.15, w * 0.8, h * 0.85, 0.99)]


class RepaintingDetector(FaceDetector):
    """A detector that finds no face in one image of every ``every`` (chosen by a checksum of its pixels, so the
    same seed on the same card always gets the same answer), else what ``inner`` finds: the face gate then
    sends that job back to be painted with its next seed, as it does a real image without a usable face."""

    def __init__(self, inner: FaceDetector, every: int = 4) -> None:
        self.inner = inner
        self.every = every
        self.engine = getattr(inner, "engine", "torch")
        self.min_confidence = inner.min_confidence

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        found = self.inner.detect(image)  # its cost either way
        return [] if zlib.crc32(np.ascontiguousarray(image[::9, ::9]).tobytes()) % self.every == 0 else found


def have_mtcnn_weights() -> bool:
    """Whether the mtcnn wheel's weight files and their reader (joblib, lz4) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("mtcnn", "joblib", "lz4"))


class InlinePainter:
    """The naive baseline as a painter: every face found and its files written on the GPU thread, inside the
    batch, before the next batch can start (what t2f did before files moved to their own thread)."""

    def __init__(self, stages: LocalStages) -> None:
        self.stages = stages

    def paint(self, jobs: Sequence[FaceJob], watch: Watch) -> list[Outcome]:
        return through_route(self.stages, jobs, watch)

    def route(self) -> Route:
        return Route(paint=self, faces=self.stages.faces, files=self.stages.files)
