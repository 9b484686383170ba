from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from t2f.errors import InvalidRequest, ModelUnavailable
from t2f.faces import FaceRequest, StepProgress
from t2f.stages.text2img import SAFETY_OFF, WITHHELD_BY_SAFETY, TextToImage


@pytest.fixture(scope="module")
def stage(tiny_sd: Path) -> TextToImage:
    """Safety checker off, so images come back."""
    return TextToImage.from_pretrained(str(tiny_sd), safety_checker=False, scheduler="dpmpp")


def request(**overrides: object) -> FaceRequest:
    values: dict[str, object] = dict(prompt="a smiling woman with curly hair", seed=7, steps=3, size=64)
    values.update(overrides)
    return FaceRequest(**values)  # type: ignore[arg-type]


def test_loads_through_from_pretrained_and_paints_the_requested_size(stage: TextToImage) -> None:
    assert type(stage.pipeline.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert stage.pipeline.scheduler.config.algorithm_type == "dpmsolver++"
    for size in (64, 96):
        result = stage.generate(request(size=size))
        assert result.image is not None
        assert result.image.shape == (size, size, 3)
        assert result.image.dtype == np.uint8
        assert result.nsfw is None  # no checker ran: "not checked", never False
        assert result.image.std() > 0


def test_same_seed_same_pixels_other_seed_other_pixels(stage: TextToImage) -> None:
    first = stage.generate(request(seed=11)).image
    again = stage.generate(request(seed=11)).image
    other = stage.generate(request(seed=12)).image
    assert first is not None and again is not None and other is not None
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 1.0


def test_batch_equals_running_each_request_alone(stage: TextToImage) -> None:
    requests = [
        request(seed=1),
        request(seed=2, prompt="an old man with a beard", negative_prompt="blurry"),
        request(seed=3),
    ]
    batch = stage.generate_batch(requests)
    for req, together in zip(requests, batch, strict=True):
        alone = stage.generate(req)
        assert together.request == req
        assert together.image is not None and alone.image is not None
        assert np.abs(together.image.astype(int) - alone.image.astype(int)).max() <= 1


def test_batch_must_share_its_shape(stage: TextToImage) -> None:
    shared = "must share steps, size, whether it is guided and profile"
    with pytest.raises(InvalidRequest, match=shared):
        stage.generate_batch([request(steps=3), request(steps=4)])
    with pytest.raises(InvalidRequest, match=shared):
        stage.generate_batch([request(guidance=7.5), request(guidance=1.0)])  # guided and unguided: other shapes
    with pytest.raises(InvalidRequest, match=shared):  # the fast profile may change the scheduler and the UNet
        stage.generate_batch([request(), dataclasses.replace(request(), profile="fast")])


def test_guided_requests_of_any_scale_paint_together_as_each_alone(stage: TextToImage) -> None:
    requests = [request(seed=1, guidance=7.5), request(seed=2, guidance=3.0), request(seed=3, guidance=12.0)]
    batch = stage.generate_batch(requests)
    for req, together in zip(requests, batch, strict=True):
        alone = stage.generate(req)
        assert together.image is not None and alone.image is not None
        assert np.abs(together.image.astype(int) - alone.image.astype(int)).max() <= 1
    same_seed = stage.generate_batch([request(seed=5, guidance=2.0), request(seed=5, guidance=14.0)])
    first, second = (face.image for face in same_seed)
    assert first is not None and second is not None
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 1.0  # each was guided at its own scale


def test_progress_callback_runs_once_per_step(stage: TextToImage) -> None:
    seen: list[StepProgress] = []
    stage.generate(request(steps=5), on_step=seen.append)
    assert [(p.step, p.total) for p in seen] == [(i, 5) for i in range(1, 6)]
    assert all(p.previews is None for p in seen)  # no TAESD configured


def test_previews_from_taesd_only_on_the_steps_asked_for(tiny_sd: Path, shared_dir: Path) -> None:
    stage = TextToImage.from_pretrained(
        str(tiny_sd), safety_checker=False, taesd=str(shared_dir / "taesd" / "diffusers")
    )
    seen: list[StepProgress] = []
    asked: list[int] = []

    def wanted(step: int) -> bool:  # the service answers this from who is watching, and when they last saw one
        asked.append(step)
        return step == 2

    stage.generate_batch([request(seed=1), request(seed=2)], on_step=seen.append, previews=wanted)
    assert asked == [1, 2, 3] and [p.step for p in seen if p.previews is not None] == [2]  # decoded when wanted
    previews = seen[1].previews
    assert previews is not None and len(previews) == 2
    assert previews[0].shape == (64, 64, 3) and previews[0].dtype == np.uint8


def test_flagged_image_is_withheld_with_a_reason(tiny_sd: Path) -> None:
    checked = TextToImage.from_pretrained(str(tiny_sd), safety_checker=True)
    result = checked.generate(request())
    assert result.nsfw is True
    assert result.image is None
    assert result.withheld_reason == WITHHELD_BY_SAFETY


def test_the_safety_check_can_be_left_to_the_caller(tiny_sd: Path) -> None:
    """The serving route paints without the checker (the GPU thread only paints) and checks each image on the
    faces thread with check_image: the same checker, the same verdict."""
    checked = TextToImage.from_pretrained(str(tiny_sd), safety_checker=True)
    assert checked.has_safety_checker and checked.pipeline.safety_checker is None  # beside the pipeline
    painted = checked.generate(request(), check_safety=False)
    assert painted.nsfw is None and painted.image is not None and "safety_check" not in painted.timings
    assert checked.check_image(painted.image) is True
    assert checked.check_images([painted.image, painted.image]) == [True, True]


def test_a_missing_safety_checker_is_said_at_load(tiny_sd: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="t2f.stages.text2img"):
        unchecked = TextToImage.from_pretrained(str(tiny_sd), safety_checker=False)
    assert [r.getMessage() for r in caplog.records] == [SAFETY_OFF]
    assert SAFETY_OFF.startswith("T2F_SAFETY_CHECKER=off: painted images and members' photos are NOT checked")
    assert not unchecked.has_safety_checker and unchecked.check_image(np.zeros((64, 64, 3), np.uint8)) is None


def test_long_prompt_is_reported_as_truncated(stage: TextToImage) -> None:
    # The test tokenizer spends about one token per character: this is ~200 tokens.
    long_prompt = "a portrait of a woman " * 9 + "wearing a red scarf"
    result = stage.generate(request(prompt=long_prompt))
    assert result.prompt_truncated
    assert result.dropped_prompt.endswith("wearing a red scarf")
    assert long_prompt.endswith(result.dropped_prompt)
    short = stage.generate(request(prompt="a face"))
    assert not short.prompt_truncated and short.dropped_prompt == ""


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prompt": "   "}, "The prompt is empty"),
        ({"prompt": "a face \ud83d"}, "The prompt has characters that are not text"),
        ({"negative_prompt": "blurry \udc00"}, "The prompt has characters that are not text"),
        ({"size": 60}, "Image size 60 is not allowed"),
        ({"steps": 0}, "Steps 0 is not allowed"),
        ({"guidance": -1.0}, "Guidance -1 is not allowed"),
        ({"seed": -5}, "Seed -5 is not allowed"),
    ],
)
def test_bad_requests_are_refused_with_the_value(
    stage: TextToImage, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        stage.generate(request(**overrides))


def test_missing_hub_model_fails_without_the_network_naming_model_and_command(
    tmp_path: Path, network_attempts: list[object]
) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        TextToImage.from_pretrained("CompVis/stable-diffusion-v1-4", cache_dir=tmp_path)
    assert network_attempts == []  # loading never downloads (and so never waits on a network)
    message = caught.value.user_message
    assert "CompVis/stable-diffusion-v1-4" in message
    assert "t2f download" in message


def test_missing_folder_and_missing_component_are_named(tiny_sd: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="does not exist"):
        TextToImage.from_pretrained(str(tmp_path / "nowhere"))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(ModelUnavailable, match="is incomplete: missing vae"):
        TextToImage.from_pretrained(str(broken))
    # With the checker switched off its folder is not needed.
    shutil.copytree(tiny_sd / "vae", broken / "vae")
    shutil.rmtree(broken / "safety_checker")
    with pytest.raises(ModelUnavailable, match="missing safety_checker"):
        TextToImage.from_pretrained(str(broken))
    assert TextToImage.from_pretrained(str(broken), safety_checker=False).generate(request()).image is not None


def test_damaged_weights_give_a_clear_error(tiny_sd: Path, tmp_path: Path) -> None:
    broken = tmp_path / "damaged"
    shutil.copytree(tiny_sd, broken)
    weights = next((broken / "unet").glob("*.safetensors"))
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        TextToImage.from_pretrained(str(broken), safety_checker=False)


def test_speedups_paint_the_same_image(tiny_sd: Path, stage: TextToImage) -> None:
    fast = TextToImage.from_pretrained(str(tiny_sd), safety_checker=False, channels_last=True, fuse_qkv=True)
    assert type(fast.pipeline.unet.attn_processors[next(iter(fast.pipeline.unet.attn_processors))]).__name__.startswith(
        "Fused"
    )
    a, b = stage.generate(request(seed=4)).image, fast.generate(request(seed=4)).image
    assert a is not None and b is not None
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.filterwarnings("ignore:Pipelines loaded with `dtype=torch.float16` cannot run with `cpu`")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_paints_like_float32(tiny_sd: Path, shared_dir: Path, stage: TextToImage, dtype: str) -> None:
    """The CUDA default precision, with every speed-up and TAESD previews, through the same code on the CPU."""
    import torch

    half = TextToImage.from_pretrained(
        str(tiny_sd),
        safety_checker=False,
        dtype=dtype,
        channels_last=True,
        fuse_qkv=True,
        taesd=str(shared_dir / "taesd" / "diffusers"),
    )
    assert half.pipeline.unet.dtype == getattr(torch, dtype) and half.pipeline.vae.dtype == getattr(torch, dtype)
    seen: list[StepProgress] = []
    painted = half.generate(request(seed=4), on_step=seen.append, previews=lambda step: True)
    reference = stage.generate(request(seed=4)).image
    assert painted.image is not None and reference is not None and painted.image.dtype == np.uint8
    # Measured: mean |difference| 0.07 (float16) and 0.6 (bfloat16) grey levels of 255.
    assert np.abs(painted.image.astype(int) - reference.astype(int)).mean() < 3
    assert seen[-1].previews is not None and seen[-1].previews[0].dtype == np.uint8
