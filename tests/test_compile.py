"""``T2F_COMPILE``: the UNet and PRNet compile in the start-up warm-up, never in a user's job.

Runs PyTorch's inductor on the CPU (it needs a C++ compiler; .ci/run installs g++), so this file
takes about two minutes: each graph of the tiny UNet and of PRNet is compiled for real.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from t2f.build import load_face_pipeline, load_text_to_image
from t2f.config import Settings
from t2f.faces import FaceRequest
from t2f.serve.backend import LocalFaceBackend
from t2f.serve.jobs import JobRequest

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")


def test_compiled_models_never_recompile_after_the_warm_up(tiny_sd: Path, prnet_dir: Path) -> None:
    settings = Settings(
        model=str(tiny_sd), prnet_dir=str(prnet_dir), safety_checker=False, compile=True, channels_last="on",
        fuse_qkv="on", max_batch=3,
    )  # fmt: skip
    pipeline = load_face_pipeline(settings, text_to_image=load_text_to_image(settings))
    # The settings reach both models: compiled wrappers, PRNet channels-last.
    assert isinstance(pipeline.text_to_image.pipeline.unet, torch._dynamo.eval_frame.OptimizedModule)
    assert isinstance(pipeline.prnet.forward, torch._dynamo.eval_frame.OptimizedModule)
    assert pipeline.prnet.memory_format == torch.channels_last
    backend = LocalFaceBackend(pipeline, crop="whole", preview_every=0, defer_exports=False)
    backend.warm_up(64, max_batch=settings.max_batch, compiled=True)

    # Every batch the service can form after start-up: any size up to max_batch, other steps,
    # guidance with and without classifier-free guidance. A recompile here would raise.
    with torch._dynamo.config.patch(error_on_recompile=True):
        for count, guidance, steps in [(2, 7.5, 3), (3, 4.0, 2), (1, 1.0, 3), (1, 7.5, 4), (2, 1.0, 2)]:
            jobs = [
                JobRequest(f"{count}{seed:011d}", seed, FaceRequest("a face", seed=seed, steps=steps,
                                                                   guidance=guidance, size=64))
                for seed in range(count)
            ]  # fmt: skip
            results = backend.run_batch(jobs, lambda progress: None, lambda job_id: False)
            assert [r.status for r in results] == ["done"] * count, [r.user_message for r in results]
            assert all(r.files["face.obj"].startswith(b"# t2f face mesh") for r in results)
