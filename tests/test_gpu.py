"""The GPU fast path (``T2F_COMPILE``): batch buckets, padding, the compile cache and the eager fallback.

Everything here runs on the CPU except the CUDA-graph tests, which skip without CUDA. The real
compile (inductor on the CPU) is exercised in tests/test_compile.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from route_helpers import local_stages, through_route
from tiny_models import randomised_resfcn256

from t2f.build import load_face_pipeline, load_text_to_image
from t2f.config import Settings
from t2f.faces import FaceRequest
from t2f.serve.jobs import JobRequest, JobResult
from t2f.serve.warmup import LocalStages, warm_up
from t2f.stages.compiling import bucket_for, buckets_for, parse_compile_mode, use_compile_cache
from t2f.stages.prnet.checkpoint import PRNetConfig
from t2f.stages.prnet.model import GraphedNetwork, PRNet
from t2f.stages.text2img import TextToImage

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU; this machine has none")


@pytest.fixture
def full_fp32() -> Iterator[None]:
    """cuDNN's and cuBLAS's TF32 off (their default on recent cards), as before afterwards. Not monkeypatch:
    cuBLAS's flag is no plain attribute, and monkeypatch's undo fails on it."""
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul


def test_buckets_are_powers_of_two_up_to_max_batch() -> None:
    assert buckets_for(1) == (1,) and buckets_for(8) == (1, 2, 4, 8) and buckets_for(6) == (1, 2, 4, 6)
    assert buckets_for(32) == (1, 2, 4, 8, 16, 32)
    assert [bucket_for(n, (1, 2, 4, 8)) for n in range(1, 10)] == [1, 2, 4, 4, 8, 8, 8, 8, 8]
    assert (parse_compile_mode(True), parse_compile_mode(False), parse_compile_mode("graphs")) == (
        "default",
        "off",
        "graphs",
    )
    # With and without guidance the UNet meets 2b and b for every bucket b: never over dynamo's limit of 8.
    assert all(len({n * k for n in buckets_for(m) for k in (1, 2)}) <= 8 for m in range(1, 33))


def test_the_compile_cache_folder_reports_cold_then_warm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "elsewhere"))  # restored after the test
    cold = use_compile_cache(tmp_path / "compile")
    assert not cold.warm and cold.files_before == 0
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    assert cache_dir() == str(tmp_path / "compile")  # inductor (and Triton, under it) write there now
    (tmp_path / "compile" / "fxgraph").mkdir()
    (tmp_path / "compile" / "fxgraph" / "entry").write_bytes(b"compiled")
    assert use_compile_cache(tmp_path / "compile").files_before == 1


def test_a_batch_is_padded_to_its_bucket_and_the_copies_dropped(tiny_sd: Path) -> None:
    stage = TextToImage.from_pretrained(str(tiny_sd), safety_checker=False)
    requests = [FaceRequest(f"face {i}", seed=i, steps=2, size=64) for i in range(3)]
    alone = [stage.generate(r).image for r in requests]
    seen: list[int] = []
    stage.pipeline.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(len(args[0])), with_kwargs=True
    )
    stage.buckets = (1, 2, 4)
    painted = stage.generate_batch(requests)
    assert [p.request for p in painted] == requests  # three answers for three requests, in order
    assert set(seen) == {8}  # 3 padded to 4, doubled for classifier-free guidance
    for image, single in zip((p.image for p in painted), alone, strict=True):
        assert image is not None and single is not None
        assert np.abs(image.astype(int) - single.astype(int)).max() <= 2  # the same faces as painted alone
    seen.clear()
    assert len(stage.generate_batch([FaceRequest("f", seed=s, steps=2, size=64, guidance=1.0) for s in range(5)])) == 5
    assert seen == [4, 4, 1, 1]  # larger than every bucket: parts of 4 and 1, no guidance, 2 steps each


def test_prnet_pads_crops_to_its_bucket() -> None:
    prnet = PRNet(randomised_resfcn256(0), PRNetConfig())
    crops = np.random.default_rng(0).random((3, 256, 256, 3), dtype=np.float32)
    plain = prnet.predict(crops)
    seen: list[int] = []
    prnet.network.register_forward_pre_hook(lambda module, args: seen.append(len(args[0])))
    prnet.buckets = (1, 2, 4)
    padded = prnet.predict(crops)
    assert seen == [4] and padded.shape == (3, 256, 256, 3)
    np.testing.assert_allclose(padded, plain, atol=1e-5)


class Broken(torch.nn.Module):
    """What the test's torch.compile returns: the model's attributes, but every call fails like a bad capture."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self._orig_mod = module

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._orig_mod, name)

    def forward(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("forced capture error\nwith a long second line")


def test_a_compile_error_falls_back_to_eager_with_one_log_line(
    tiny_sd: Path, prnet_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(torch, "compile", lambda module, **options: Broken(module))
    settings = Settings(
        model=str(tiny_sd),
        prnet_dir=str(prnet_dir),
        safety_checker=False,
        compile_mode="graphs",
        max_batch=2,
        cache_dir=tmp_path,
    )
    pipeline = load_face_pipeline(settings, text_to_image=load_text_to_image(settings), crop="whole")
    stage = pipeline.text_to_image
    assert stage.compiled and pipeline.prnet.compiled and stage.buckets == (1, 2) and pipeline.prnet.buckets == (1,)
    local = local_stages(pipeline, crop="whole")
    with caplog.at_level(logging.INFO):
        seconds = warm_up(local, 64, max_batch=2, compile_mode="graphs")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "t2f.serve.warmup"]
    assert warnings == ["compiling or capturing failed (RuntimeError: forced capture error); both models run eagerly"]
    assert any(r.getMessage().startswith("warm-up took ") for r in caplog.records)
    assert set(seconds) == {1} and seconds[1] > 0
    assert not stage.compiled and not pipeline.prnet.compiled and stage.buckets == pipeline.prnet.buckets == ()
    jobs = [JobRequest(f"{seed:012d}", seed, FaceRequest("a face", seed=seed, steps=2, size=64)) for seed in range(3)]
    results = through_route(local, jobs)
    assert [r.status for r in results if isinstance(r, JobResult)] == ["done"] * 3  # the bot goes on, eagerly


@cuda
@pytest.mark.parametrize("channels_last", [False, True])
def test_prnet_replays_a_cuda_graph_per_bucket_with_eager_numbers(channels_last: bool, full_fp32: None) -> None:
    # cuDNN's default TF32 convolutions let the eager and the captured network pick different algorithms: on
    # the H200 they differed by up to 0.0072 (bench/results/gpu-nvidia-h200.md). In full fp32 they must agree.
    eager = PRNet(randomised_resfcn256(0), PRNetConfig(), device="cuda")
    graphed = PRNet(
        randomised_resfcn256(0),
        PRNetConfig(),
        device="cuda",
        compile_mode="graphs",
        buckets=(1, 2, 4),
        channels_last=channels_last,
    )
    assert isinstance(graphed.forward, GraphedNetwork)
    crops = np.random.default_rng(0).random((3, 256, 256, 3), dtype=np.float32)
    np.testing.assert_allclose(graphed.predict(crops), eager.predict(crops), atol=1e-3)
    np.testing.assert_allclose(graphed.predict(crops[:1]), eager.predict(crops[:1]), atol=1e-3)
    np.testing.assert_allclose(graphed.predict(crops[2:]), eager.predict(crops[2:]), atol=1e-3)  # new input, same graph
    assert sorted(graphed.forward.graphs) == [1, 4]  # one capture per bucket met, replayed afterwards


@cuda
@pytest.mark.parametrize("mode", ["graphs", "graphs-single"])
def test_graphs_mode_never_recompiles_after_the_warm_up(
    mode: str, tiny_sd: Path, prnet_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch._dynamo.utils import counters

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "elsewhere"))
    settings = Settings(
        model=str(tiny_sd),
        prnet_dir=str(prnet_dir),
        safety_checker=False,
        compile_mode=mode,
        device="cuda",
        max_batch=4,
        cache_dir=tmp_path,
        # The fast profile and the compiled decode too: DeepCache's twin and the decode are CUDA graphs of their own.
        karras_sigmas=True,
        deepcache_interval=2,
        compile_vae=True,
    )
    skips, breaks = counters["inductor"]["cudagraph_skips"], sum(counters["graph_break"].values())
    pipeline = load_face_pipeline(settings, text_to_image=load_text_to_image(settings), crop="whole")
    local = local_stages(pipeline, crop="whole")
    assert set(warm_up(local, 64, max_batch=4, compile_mode=mode)) == {1, 2, 4}
    with torch._dynamo.config.patch(error_on_recompile=True):
        for guidances, profile in [
            ((7.5, 4.0, 9.0), "quality"),
            ((1.0,), "quality"),
            ((7.5,) * 4, "quality"),
            ((1.0, 1.0), "quality"),
            ((7.5,), "quality"),
            ((7.5, 4.0, 9.0), "fast"),
            ((7.5,), "fast"),
            ((1.0,), "fast"),
        ]:
            jobs = [
                JobRequest(
                    f"{len(guidances)}{s:011d}",
                    s,
                    FaceRequest("a face", seed=s, steps=3, guidance=g, size=64, profile=profile),
                )
                for s, g in enumerate(guidances)
            ]
            results = [r for r in through_route(local, jobs) if isinstance(r, JobResult)]
            assert [r.status for r in results] == ["done"] * len(jobs)
    assert sorted(pipeline.prnet.forward.graphs) == [1]  # type: ignore[union-attr]  # one face at a time
    # Every compiled graph ran from CUDA graphs (a skip is a graph inductor ran without them), none split.
    assert counters["inductor"]["cudagraph_skips"] == skips
    assert sum(counters["graph_break"].values()) == breaks


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])  # cpu: the test's own code runs here
def test_mtcnn_on_the_device_finds_the_cpu_boxes(device: str, shared_dir: Path, full_fp32: None) -> None:
    pytest.importorskip("joblib", reason="MTCNN's weights come with the mtcnn wheel, read by joblib and lz4")
    from skimage.data import astronaut
    from skimage.io import imread

    from t2f.stages.mtcnn.detector import TorchMTCNN

    # cuDNN's TF32 convolutions move the boxes by up to ~0.9 px (harmless for a crop): compare in full fp32.
    on_cpu, on_device = TorchMTCNN.from_pretrained(), TorchMTCNN.from_pretrained(device=device)
    images = [astronaut(), *(imread(p) for p in sorted((shared_dir / "prnet" / "aflw2000-samples").glob("*.jpg")))]
    for image in images:
        expected, got = on_cpu.detect(image), on_device.detect(image)
        assert got.boxes.shape[0] == expected.boxes.shape[0] >= 1
        np.testing.assert_allclose(got.boxes, expected.boxes, atol=0.05)  # cuDNN's own order of sums
        np.testing.assert_allclose(got.landmarks, expected.landmarks, atol=0.05)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])  # cpu: the test's own code runs here
def test_turntable_and_preview_drawn_on_the_device_match_numpy(device: str, shared_dir: Path) -> None:
    from mesh_fixtures import reference_mesh

    from t2f.export.preview import preview_strip
    from t2f.export.render_torch import ViewRenderer
    from t2f.export.turntable import turntable_frames

    image, mesh = reference_mesh(shared_dir)
    renderer = ViewRenderer(device)
    drawn: list[dict[str, np.ndarray] | None] = []
    draw = renderer.draw
    renderer.draw = lambda *a, **k: drawn.append(draw(*a, **k)) or drawn[-1]  # type: ignore[method-assign]
    for got, expected in [
        (turntable_frames(mesh, renderer=renderer), turntable_frames(mesh)),
        (preview_strip(image, mesh, renderer=renderer), preview_strip(image, mesh)),
    ]:
        apart = np.abs(got.astype(np.int16) - expected.astype(np.int16)).max(-1)
        assert got.shape == expected.shape and apart.max() <= 1 and (apart > 0).mean() < 0.005
    # The renderer drew both itself: a failure would have let numpy draw, and numpy always matches numpy.
    assert len(drawn) == 2 and all(views is not None for views in drawn) and not renderer.broken


def test_a_warm_restart_takes_the_eta_batch_times_from_the_last_start(
    tiny_sd: Path, prnet_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from t2f.serve import warmup
    from t2f.stages.compiling import CompileCache

    settings = Settings(model=str(tiny_sd), prnet_dir=str(prnet_dir), safety_checker=False)
    stage = load_text_to_image(settings)
    stage.buckets = (1, 2)  # what a compiled stage has; the timing runs are the same eagerly
    local = local_stages(load_face_pipeline(settings, text_to_image=stage, crop="whole"), crop="whole")
    timed: list[int] = []
    estimate = warmup._estimate

    def counted(stages: LocalStages, count: int, size: int, steps: int) -> float:
        timed.append(count)
        return estimate(stages, count, size, steps)

    monkeypatch.setattr(warmup, "_estimate", counted)

    def start(files_before: int, steps: int = 3) -> dict[int, float]:
        stage.compile_cache = CompileCache(tmp_path, files_before=files_before)
        timed.clear()
        with caplog.at_level(logging.INFO, logger="t2f.serve.warmup"):
            return warm_up(local, 64, max_batch=2, compile_mode="default", steps=steps)

    first = start(files_before=0)  # a cold cache: every bucket timed, and the times kept
    assert timed == [1, 2] and set(first) == {1, 2} and (tmp_path / warmup.TIMES_FILE).is_file()
    assert start(files_before=5) == first and timed == []  # a warm restart: the same times, nothing timed
    said = caplog.records[-1].getMessage()  # the log line's parts: first runs, then the kept times
    assert said.startswith("warm-up took ") and "; batch 1 " in said and ", batch 2 " in said
    assert ", batch times kept from the last start " in said and said.count("batch times") == 1  # none timed
    assert set(start(files_before=5, steps=4)) == {1, 2} and timed == [1, 2]  # other steps: timed again
    (tmp_path / warmup.TIMES_FILE).write_text("{not json", encoding="utf-8")
    assert set(start(files_before=5, steps=4)) == {1, 2} and timed == [1, 2]  # damaged: timed again
