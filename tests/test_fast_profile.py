"""The fast profile on the CPU with the tiny model: DeepCache, Karras sigmas, the compiled-decode path, and the
profile's way from a request to the painter (compiled, in tests/test_compile.py; timed, on a GPU only)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from route_helpers import RecordingWatch, through_route

from t2f.config import Settings, settings_from_mapping
from t2f.errors import ConfigError, InvalidRequest
from t2f.faces import FaceRequest
from t2f.serve.jobs import FaceJob, JobPhase, JobProgress, JobRequest, JobResult, JobStatus, Outcome
from t2f.serve.requests import RequestDefaults
from t2f.serve.route import Route, Watch
from t2f.serve.service import JobService
from t2f.stages.decode import LatentDecoder
from t2f.stages.deepcache import DeepCacheUNet
from t2f.stages.profiles import FastProfile, karras_twin
from t2f.stages.text2img import TextToImage


def stage_of(tiny_sd: Path, fast: FastProfile) -> TextToImage:
    return TextToImage.from_pretrained(str(tiny_sd), safety_checker=False, fast=fast)


def face(seed: int = 5, *, steps: int = 7, profile: str = "quality") -> FaceRequest:
    return FaceRequest("a smiling woman", seed=seed, steps=steps, size=64, profile=profile)


def painted(stage: TextToImage, request: FaceRequest) -> np.ndarray:
    image = stage.generate(request).image
    assert image is not None
    return image.astype(np.float64)


def count_calls(modules: dict[str, torch.nn.Module]) -> dict[str, int]:
    calls = dict.fromkeys(modules, 0)
    for name, module in modules.items():
        module.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    return calls


def test_deepcache_runs_the_deep_blocks_on_refresh_steps_only_and_paints_close_to_the_full_unet(tiny_sd: Path) -> None:
    stage = stage_of(tiny_sd, FastProfile(deepcache_interval=3))
    unet = stage.pipeline.unet
    calls = count_calls({"deep": unet.mid_block, "deepest down": unet.down_blocks[-1], "outer up": unet.up_blocks[-1]})
    quality = painted(stage, face())
    assert calls == {"deep": 7, "deepest down": 7, "outer up": 7}  # the quality profile: the whole UNet, 7 steps
    seen: list[object] = []
    run = stage._run_pipeline
    stage._run_pipeline = lambda *args: seen.append(stage.pipeline.unet) or run(*args)  # type: ignore[method-assign]
    fast = painted(stage, face(profile="fast"))
    # 7 steps, the whole UNet every 3rd: steps 0, 3 and 6 run the deep blocks; the outer blocks run every step.
    assert calls == {"deep": 7 + 3, "deepest down": 7 + 3, "outer up": 7 + 7}
    (wrapper,) = seen
    assert isinstance(wrapper, DeepCacheUNet) and (wrapper.steps, wrapper.refreshes) == (7, 3)
    assert stage.pipeline.unet is unet and stage.profiles.deepcache is not None  # given back after the batch
    assert stage.profiles.deepcache.cache.feature is None  # the kept features let go of
    # Same seed: near the full UNet's picture, far nearer than another seed's (random weights paint noise).
    other_seed = painted(stage, face(seed=6))
    assert 0 < np.abs(fast - quality).mean() < 0.1 * np.abs(other_seed - quality).mean()
    np.testing.assert_array_equal(painted(stage, face()), quality)  # the quality profile is untouched


def test_deepcache_twin_shares_the_weights_and_leaves_the_unet_whole(tiny_sd: Path) -> None:
    stage = stage_of(tiny_sd, FastProfile(deepcache_interval=2))
    unet, deepcache = stage.pipeline.unet, stage.profiles.deepcache
    assert deepcache is not None
    twin = deepcache.twin
    assert twin.down_blocks[0] is unet.down_blocks[0] and twin.up_blocks[-1] is unet.up_blocks[-1]
    assert (
        twin.conv_in is unet.conv_in and twin.conv_out is unet.conv_out and twin.time_embedding is unet.time_embedding
    )
    assert type(twin.mid_block).__name__ == "SkippedMid" and type(unet.mid_block).__name__ == "UNetMidBlock2DCrossAttn"
    assert [type(b).__name__ for b in unet.up_blocks] == ["CrossAttnUpBlock2D", "UpBlock2D"]
    twin_weights = {id(p) for p in twin.parameters()}
    assert twin_weights < {id(p) for p in unet.parameters()}  # no copies; the deep blocks' weights are not in it


def test_a_deepcache_branch_deeper_than_the_unet_is_refused_in_the_settings_words(tiny_sd: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^T2F_DEEPCACHE_BRANCH=2 does not fit this model's UNet; allowed: 1 to 1\.$"
    ):
        stage_of(tiny_sd, FastProfile(deepcache_interval=2, deepcache_branch=2))


def test_karras_sigmas_follow_the_documented_schedule_in_fast_batches_only(tiny_sd: Path) -> None:
    stage = stage_of(tiny_sd, FastProfile(karras_sigmas=True))
    quality_scheduler = stage.pipeline.scheduler
    karras = stage.profiles.scheduler
    assert karras is not None and karras is not quality_scheduler
    assert karras.config.algorithm_type == "dpmsolver++" and karras.config.solver_order == 2  # the same sampler
    steps = 12
    karras.set_timesteps(steps)
    quality_scheduler.set_timesteps(steps)
    # Karras et al. (2022), eq. 5 with rho = 7, between the training schedule's own largest and smallest sigma.
    alphas = quality_scheduler.alphas_cumprod.double()
    trained = ((1 - alphas) / alphas).sqrt()
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    rho = 7.0
    expected = (trained[-1] ** (1 / rho) + ramp * (trained[0] ** (1 / rho) - trained[-1] ** (1 / rho))) ** rho
    np.testing.assert_allclose(karras.sigmas[:-1].double().numpy(), expected.numpy(), rtol=1e-5)
    assert karras.sigmas[-1] == 0 and quality_scheduler.sigmas[-1] == 0
    # Denser at low noise than the default spacing: more of the 12 steps are spent below sigma 1.
    assert (karras.sigmas[:-1] < 1).sum() > (quality_scheduler.sigmas[:-1] < 1).sum()
    # A fast batch paints with it; a quality batch with the usual one; the pipeline keeps its own after.
    used: list[object] = []
    run = stage._run_pipeline
    stage._run_pipeline = lambda *args: used.append(stage.pipeline.scheduler) or run(*args)  # type: ignore[method-assign]
    fast, quality = painted(stage, face(profile="fast")), painted(stage, face())
    assert used == [karras, quality_scheduler] and stage.pipeline.scheduler is quality_scheduler
    assert np.abs(fast - quality).mean() > 0  # other noise levels, another path to the picture


def test_karras_sigmas_need_a_sampler_that_has_them(tiny_sd: Path) -> None:
    from t2f.config.values import KARRAS_SCHEDULERS, SCHEDULERS
    from t2f.stages.sd_pipeline import make_scheduler

    config = stage_of(tiny_sd, FastProfile()).pipeline.scheduler.config
    for name in SCHEDULERS:  # the settings' list says what diffusers' classes allow
        scheduler = make_scheduler(name, config)
        if name in KARRAS_SCHEDULERS:
            assert karras_twin(scheduler).config.use_karras_sigmas
        else:
            with pytest.raises(ValueError, match="has no Karras sigmas"):
                karras_twin(scheduler)
    with pytest.raises(ConfigError) as refused:
        settings_from_mapping({"T2F_KARRAS_SIGMAS": "on", "T2F_SCHEDULER": "pndm"})
    assert str(refused.value) == (
        "T2F_KARRAS_SIGMAS=on needs a sampler with Karras sigmas, not T2F_SCHEDULER=pndm; use dpmpp, euler, unipc, "
        "or switch T2F_KARRAS_SIGMAS off."
    )


def test_the_decode_in_one_function_paints_the_pipelines_pixels(tiny_sd: Path) -> None:
    stage = stage_of(tiny_sd, FastProfile())
    before = painted(stage, face(steps=3))
    stage.decoder = LatentDecoder(stage.pipeline.vae, "off")  # what T2F_COMPILE_VAE compiles
    np.testing.assert_array_equal(painted(stage, face(steps=3)), before)


def test_the_fast_profile_settings_parse_and_default_to_off() -> None:
    settings = Settings()
    assert (settings.profile, settings.fast_steps, settings.karras_sigmas) == ("quality", 0, False)
    assert (settings.deepcache_interval, settings.deepcache_branch, settings.compile_vae) == (0, 1, False)
    assert not settings.speedup("channels_last")  # nothing for Stable Diffusion until measured
    chosen = settings_from_mapping(
        {
            "T2F_PROFILE": "Fast",
            "T2F_FAST_STEPS": "15",
            "T2F_KARRAS_SIGMAS": "on",
            "T2F_DEEPCACHE_INTERVAL": "3",
            "T2F_DEEPCACHE_BRANCH": "2",
            "T2F_COMPILE_VAE": "yes",
            "T2F_CHANNELS_LAST": "compiled",
            "T2F_COMPILE": "graphs",
            "T2F_DEVICE": "cpu",
        }
    )
    assert (chosen.profile, chosen.fast_steps, chosen.karras_sigmas) == ("fast", 15, True)
    assert (chosen.deepcache_interval, chosen.deepcache_branch, chosen.compile_vae) == (3, 2, True)
    # channels-last "compiled": the UNet and VAE where T2F_COMPILE is on; PRNet as "auto" (CUDA only).
    assert chosen.speedup("channels_last") and not chosen.prnet_channels_last()
    assert not dataclasses.replace(chosen, compile_mode="off").speedup("channels_last")
    for variable, raw, said in [
        ("T2F_PROFILE", "turbo", "T2F_PROFILE='turbo' is not allowed; allowed: quality, fast."),
        ("T2F_FAST_STEPS", "3", "T2F_FAST_STEPS='3' is not allowed; allowed: 0 (= T2F_STEPS), 5..50."),
        ("T2F_DEEPCACHE_INTERVAL", "11", "T2F_DEEPCACHE_INTERVAL=11 is out of range; allowed: 0..10."),
        ("T2F_DEEPCACHE_BRANCH", "0", "T2F_DEEPCACHE_BRANCH=0 is out of range; allowed: 1..3."),
    ]:
        with pytest.raises(ConfigError) as refused:
            settings_from_mapping({variable: raw})
        assert str(refused.value) == said
    # Each value may be fine alone and the pair not: PNDM has no Karras sigmas.
    with pytest.raises(ConfigError) as refused:
        settings_from_mapping({"T2F_KARRAS_SIGMAS": "on", "T2F_SCHEDULER": "pndm"})
    assert str(refused.value) == (
        "T2F_KARRAS_SIGMAS=on needs a sampler with Karras sigmas, not T2F_SCHEDULER=pndm; use dpmpp, euler, unipc, "
        "or switch T2F_KARRAS_SIGMAS off."
    )


def test_a_request_gets_the_operators_profile_and_the_fast_steps() -> None:
    defaults = RequestDefaults(steps=25, fast_steps=12, profile="fast")
    assert (defaults.request("a face").profile, defaults.request("a face").steps) == ("fast", 12)
    assert defaults.request("a face", steps=30).steps == 30  # a member's own steps are theirs
    chosen = defaults.request("a face", profile="quality")
    assert (chosen.profile, chosen.steps) == ("quality", 25)
    assert RequestDefaults(steps=25).request("a face", profile="fast").steps == 25  # T2F_FAST_STEPS=0
    with pytest.raises(InvalidRequest) as refused:  # the web page and the CLI pass what they were sent
        defaults.request("a face", profile="turbo")
    assert str(refused.value) == "Profile 'turbo' is not allowed; use quality or fast."


def test_the_profile_reaches_the_painter_and_the_stage_through_the_route(tiny_sd: Path, prnet_dir: Path) -> None:
    from route_helpers import local_stages

    from t2f.build import load_face_pipeline

    stage = stage_of(tiny_sd, FastProfile(deepcache_interval=2))
    pipeline = load_face_pipeline(Settings(prnet_dir=str(prnet_dir)), text_to_image=stage, crop="whole")
    stages = local_stages(pipeline, crop="whole")
    unets: list[object] = []
    run = stage._run_pipeline
    stage._run_pipeline = lambda *args: unets.append(stage.pipeline.unet) or run(*args)  # type: ignore[method-assign]
    jobs = [JobRequest(f"fast{i}", i, face(seed=i, steps=3, profile="fast")) for i in range(2)]
    results = [r for r in through_route(stages, jobs, RecordingWatch()) if isinstance(r, JobResult)]
    assert [r.status for r in results] == [JobStatus.DONE] * 2
    assert [r.report.request.profile for r in results if r.report and r.report.request] == ["fast", "fast"]
    (unet,) = unets
    assert isinstance(unet, DeepCacheUNet) and unet.refreshes == 2  # steps 0 and 2 of 3


class ProfileRecorder:
    """A painter that records each batch's job ids and profiles (the queue's grouping, not the painting); its
    first batch waits for ``go``, so the other jobs queue up behind it."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str]]] = []
        self.go = threading.Event()

    def paint(self, jobs: Sequence[FaceJob], watch: Watch) -> list[Outcome]:
        self.go.wait(60)
        self.batches.append([(job.job_id, job.request.face.profile) for job in jobs])
        for job in jobs:
            watch.report(JobProgress(job.job_id, JobPhase.PAINTING, 1, 1))
        return [JobResult(job.job_id, JobStatus.DONE) for job in jobs]


class Files:
    def write(self, job: FaceJob) -> JobResult:
        return JobResult(job.job_id, JobStatus.DONE)


async def test_batches_group_by_profile() -> None:
    recorder = ProfileRecorder()
    service = JobService(Route(paint=recorder, faces=None, files=Files()), max_batch=4)
    jobs = [
        JobRequest(f"j{i}", i, FaceRequest("a face", seed=i, steps=10, profile=profile))
        for i, profile in enumerate(["quality", "fast", "quality", "fast", "fast"])
    ]
    handles = [service.submit(job) for job in jobs]
    recorder.go.set()
    await asyncio.gather(*(h.result for h in handles))
    await service.shutdown()
    # Same steps and size, all guided: only the profile keeps them apart. The first batch may have been taken
    # before the rest were queued; the three fast jobs were waiting together behind it.
    assert sorted(job for batch in recorder.batches for job, _ in batch) == ["j0", "j1", "j2", "j3", "j4"]
    assert all(len({profile for _, profile in batch}) == 1 for batch in recorder.batches), recorder.batches
    assert [("j1", "fast"), ("j3", "fast"), ("j4", "fast")] in recorder.batches
