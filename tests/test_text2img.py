from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from t2f.errors import InvalidRequest, ModelUnavailable
from t2f.faces import FaceRequest, StepProgress
from t2f.stages.text2img import WITHHELD_BY_SAFETY, TextToImage


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
    with pytest.raises(InvalidRequest, match="must share steps, guidance and size"):
        stage.generate_batch([request(steps=3), request(steps=4)])


def test_progress_callback_runs_once_per_step(stage: TextToImage) -> None:
    seen: list[StepProgress] = []
    stage.generate(request(steps=5), on_step=seen.append)
    assert [(p.step, p.total) for p in seen] == [(i, 5) for i in range(1, 6)]
    assert all(p.previews is None for p in seen)  # no TAESD configured


def test_previews_from_taesd_every_n_steps(tiny_sd: Path, shared_dir: Path) -> None:
    stage = TextToImage.from_pretrained(
        str(tiny_sd), safety_checker=False, taesd=str(shared_dir / "taesd" / "diffusers")
    )
    seen: list[StepProgress] = []
    stage.generate_batch([request(seed=1), request(seed=2)], on_step=seen.append, preview_every=2)
    with_previews = [p.step for p in seen if p.previews is not None]
    assert with_previews == [2, 3]  # every 2nd step and always the last
    previews = seen[-1].previews
    assert previews is not None and len(previews) == 2
    assert previews[0].shape == (64, 64, 3) and previews[0].dtype == np.uint8


def test_flagged_image_is_withheld_with_a_reason(tiny_sd: Path) -> None:
    checked = TextToImage.from_pretrained(str(tiny_sd), safety_checker=True)
    result = checked.generate(request())
    assert result.nsfw is True
    assert result.image is None
    assert result.withheld_reason == WITHHELD_BY_SAFETY


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
    painted = half.generate(request(seed=4), on_step=seen.append, preview_every=1)
    reference = stage.generate(request(seed=4)).image
    assert painted.image is not None and reference is not None and painted.image.dtype == np.uint8
    # Measured: mean |difference| 0.07 (float16) and 0.6 (bfloat16) grey levels of 255.
    assert np.abs(painted.image.astype(int) - reference.astype(int)).mean() < 3
    assert seen[-1].previews is not None and seen[-1].previews[0].dtype == np.uint8
