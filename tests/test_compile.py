"""``T2F_COMPILE``: the UNet and PRNet compile in the start-up warm-up, per batch bucket, never in a user's job.

Runs PyTorch's inductor on the CPU (it needs a C++ compiler; .ci/run installs g++), so this file
takes a few minutes: each bucket's graph of the tiny UNet and of PRNet is compiled for real, into a
fresh compile cache. Mode ``graphs`` (CUDA graphs) is tested in tests/test_gpu.py, on CUDA only.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
from route_helpers import local_stages, through_route
from torch._dynamo.utils import counters

from t2f.build import load_face_pipeline, load_text_to_image
from t2f.config import Settings
from t2f.faces import FaceRequest
from t2f.serve.jobs import JobRequest, JobResult
from t2f.serve.warmup import warm_up

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The settings' cache folder, shared by this file's tests: the first fills the compile cache cold, the next
    loads what it can from it (as a restart does) and compiles only its own graphs, minutes sooner."""
    return tmp_path_factory.mktemp("t2f-cache")


def test_compiled_models_never_recompile_after_the_warm_up(
    tiny_sd: Path,
    prnet_dir: Path,
    tmp_path: Path,
    compile_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "elsewhere"))  # restored after the test
    settings = Settings(
        model=str(tiny_sd),
        prnet_dir=str(prnet_dir),
        safety_checker=False,
        compile_mode="default",
        channels_last="on",
        fuse_qkv="on",
        max_batch=4,
        cache_dir=compile_cache,
        # The whole fast profile, and the decode compiled too: the UNet, DeepCache's twin and the decode.
        karras_sigmas=True,
        deepcache_interval=2,
        compile_vae=True,
    )
    breaks_before = sum(counters["graph_break"].values())
    stage = load_text_to_image(settings)
    pipeline = load_face_pipeline(settings, text_to_image=stage)
    # The settings reach both models: compiled wrappers, buckets, channels-last, a cold cache.
    assert isinstance(stage.pipeline.unet, torch._dynamo.eval_frame.OptimizedModule)
    assert isinstance(pipeline.prnet.forward, torch._dynamo.eval_frame.OptimizedModule)
    deepcache, decoder = stage.profiles.deepcache, stage.decoder
    assert deepcache is not None and isinstance(deepcache.compiled_twin, torch._dynamo.eval_frame.OptimizedModule)
    assert decoder is not None and decoder.compiled is not None
    assert stage.buckets == (1, 2, 4) and pipeline.prnet.buckets == (1,)  # the faces stage: one face at a time
    assert pipeline.prnet.memory_format == torch.channels_last
    assert stage.pipeline.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert stage.compile_cache is not None and not stage.compile_cache.warm
    local = local_stages(pipeline, crop="whole")
    with caplog.at_level(logging.INFO, logger="t2f.serve.warmup"):
        seconds = warm_up(local, 64, max_batch=settings.max_batch, compile_mode=settings.compile_mode)
    assert set(seconds) == {1, 2, 4} and all(s > 0 for s in seconds.values())
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("warm-up took")]
    assert "compiled batches 1, 2, 4;" in line  # guided: unguided batches run the eager UNet
    assert f"compile cache {settings.compile_dir()} cold (0 files before)" in line
    parts = re.findall(r"(batch \d+(?: fast)?|batch times|other) ([\d.]+) s", line.rsplit(")", 1)[-1])
    assert [name for name, _ in parts] == [
        *(f"batch {count}{profile}" for count in (1, 2, 4) for profile in ("", " fast")),  # DeepCache's twin too
        "batch times",
        "other",
    ]
    took = float(re.match(r"warm-up took ([\d.]+) s", line)[1])  # type: ignore[index]
    assert abs(sum(float(s) for _, s in parts) - took) <= 0.05 * len(parts)  # the parts cover the whole
    assert any(path.is_file() for path in settings.compile_dir().rglob("*"))  # compiled code kept for a restart
    # The batch is dynamic: the guided UNet batches 2, 4 and 8 share one graph (static shapes compiled one per
    # bucket and guidance, six here); DeepCache's twin runs the same forward, with one graph of its own.
    unet_forward = type(stage.pipeline.unet._orig_mod).forward
    assert len(torch._dynamo.eval_frame._debug_get_cache_entry_list(unet_forward)) == 2

    # Every batch the service can form after start-up: any size up to max_batch (3 is padded to 4), other
    # steps, guided jobs of different scales together, and unguided batches, in either profile. A recompile
    # here would raise.
    with torch._dynamo.config.patch(error_on_recompile=True):
        for guidances, steps, profile in [
            ((7.5,) * 3, 3, "quality"),
            ((4.0, 9.0), 2, "quality"),
            ((1.0,), 3, "quality"),
            ((7.5, 2.0, 12.0, 5.0), 2, "quality"),
            ((1.0,) * 3, 2, "quality"),
            ((7.5,) * 3, 5, "fast"),
            ((4.0,), 3, "fast"),
            ((1.0, 1.0), 3, "fast"),
        ]:
            jobs = [
                JobRequest(
                    f"{len(guidances)}{seed:011d}",
                    seed,
                    FaceRequest("a face", seed=seed, steps=steps, guidance=guidance, size=64, profile=profile),
                )
                for seed, guidance in enumerate(guidances)
            ]
            results = [r for r in through_route(local, jobs) if isinstance(r, JobResult)]
            assert [r.status for r in results] == ["done"] * len(jobs), [r.user_message for r in results]
            assert all(r.files["face.obj"].startswith(b"# t2f face mesh") for r in results)
            assert stage.compiled  # an unguided batch borrowed the eager UNet and gave the compiled one back
    assert sum(counters["graph_break"].values()) == breaks_before  # no model split its graph anywhere


def test_graphs_single_paints_one_face_on_a_static_graph_beside_the_dynamic_one(
    tiny_sd: Path, prnet_dir: Path, tmp_path: Path, compile_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the CPU "reduce-overhead" compiles with inductor and records no CUDA graphs; how dynamo keeps the
    # two wrappers' entries apart is the same.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "elsewhere"))
    settings = Settings(
        model=str(tiny_sd),
        prnet_dir=str(prnet_dir),
        safety_checker=False,
        compile_mode="graphs-single",
        device="cpu",
        max_batch=4,
        cache_dir=compile_cache,
    )
    stage = load_text_to_image(settings)
    unet_forward = type(stage.pipeline.unet._orig_mod).forward
    entries_before = len(torch._dynamo.eval_frame._debug_get_cache_entry_list(unet_forward))  # earlier tests'
    assert isinstance(stage.single_unet, torch._dynamo.eval_frame.OptimizedModule)
    assert stage.single_unet._orig_mod is stage.pipeline.unet._orig_mod  # one set of weights, two wrappers
    pipeline = load_face_pipeline(settings, text_to_image=stage, crop="whole")
    assert set(warm_up(local_stages(pipeline, crop="whole"), 64, max_batch=4, compile_mode="graphs-single")) == {
        1,
        2,
        4,
    }
    entries = torch._dynamo.eval_frame._debug_get_cache_entry_list(unet_forward)  # per code object, process-wide
    assert len(entries) - entries_before == 2  # this model's: one dynamic, one static
    used: list[object] = []
    run = stage._run_pipeline

    def watched(requests: object, guidance: float, step_end: object) -> object:
        used.append(stage.pipeline.unet)
        return run(requests, guidance, step_end)  # type: ignore[arg-type]

    monkeypatch.setattr(stage, "_run_pipeline", watched)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for count, guidance in [(1, 7.5), (3, 7.5), (1, 1.0), (2, 7.5)]:
            requests = [FaceRequest("a face", seed=s, steps=2, guidance=guidance, size=64) for s in range(count)]
            assert all(p.image is not None for p in stage.generate_batch(requests))
    single, dynamic = stage.single_unet, stage.pipeline.unet
    assert used == [single, dynamic, dynamic._orig_mod, dynamic]  # one guided face alone: the static graph
    assert stage.pipeline.unet is dynamic  # given back after each batch
    stage.use_eager()
    assert stage.single_unet is None and not stage.compiled
