from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from prnet_tf_reference import random_variables, read_variable_shapes, tf_forward, write_tf_checkpoint
from tiny_models import randomised_resfcn256

from t2f.errors import ModelUnavailable
from t2f.stages.prnet.checkpoint import import_tf_checkpoint, tf_to_torch_names
from t2f.stages.prnet.model import PRNet
from t2f.stages.prnet.network import ResFCN256, tf_same_padding


@pytest.fixture(scope="module")
def official_shapes(shared_dir: Path) -> dict[str, list[int]]:
    return read_variable_shapes(shared_dir / "docs" / "prnet-checkpoint-variables.tsv")


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory, official_shapes: dict[str, list[int]]):
    variables = random_variables(official_shapes, seed=1)
    prefix = tmp_path_factory.mktemp("ckpt") / "256_256_resfcn256_weight"
    write_tf_checkpoint(prefix, variables)
    return prefix, variables


def test_architecture_matches_the_paper_counts() -> None:
    net = ResFCN256()
    assert sum(p.numel() for p in net.parameters()) == 13_353_618
    assert sum(b.numel() for name, b in net.named_buffers() if "running" in name) == 11_890
    assert all(m.bias is None for m in net.modules() if isinstance(m, torch.nn.modules.conv._ConvNd))
    assert {m.eps for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-3}


def test_tf_same_padding_is_asymmetric_for_even_kernels() -> None:
    assert tf_same_padding(256, 4, 1) == (1, 2)
    assert tf_same_padding(256, 4, 2) == (1, 1)
    assert tf_same_padding(256, 1, 2) == (0, 0)


def test_name_map_covers_exactly_the_official_variables(official_shapes: dict[str, list[int]]) -> None:
    assert set(tf_to_torch_names()) == set(official_shapes)
    assert len(official_shapes) == 245


def test_imported_checkpoint_matches_tensorflow(random_checkpoint, tmp_path: Path) -> None:
    prefix, variables = random_checkpoint
    config = import_tf_checkpoint(prefix, tmp_path / "prnet")
    assert len(config.sha256) == 64
    from t2f.files.fetch import sha256_of
    from t2f.stages.prnet.checkpoint import is_official

    assert config.source_sha256 == sha256_of(Path(f"{prefix}.data-00000-of-00001"))
    assert not is_official(config)  # random values, whatever the file is called
    prnet = PRNet.from_pretrained(tmp_path / "prnet")
    images = np.random.default_rng(3).random((2, 256, 256, 3), dtype=np.float32)
    torch_out = prnet.predict(images)
    tf_out = tf_forward(variables, images)
    assert torch_out.shape == tf_out.shape == (2, 256, 256, 3)
    assert tf_out.std() > 0.01  # the comparison is not between two constant maps
    assert np.abs(torch_out - tf_out).max() <= 1e-4


def test_importer_lists_missing_and_misshaped_variables(random_checkpoint, tmp_path: Path) -> None:
    _, variables = random_checkpoint
    broken = dict(variables)
    del broken["resfcn256/resBlock_3/Conv_1/weights"]
    broken["resfcn256/Conv/weights"] = np.zeros((3, 3, 3, 16), np.float32)
    prefix = tmp_path / "broken" / "ckpt"
    write_tf_checkpoint(prefix, broken, with_adam_slots=False)
    with pytest.raises(ModelUnavailable) as caught:
        import_tf_checkpoint(prefix, tmp_path / "out")
    message = caught.value.user_message
    assert "(2 problems)" in message
    assert "missing resfcn256/resBlock_3/Conv_1/weights" in message
    assert "resfcn256/Conv/weights has shape [3, 3, 3, 16]" in message
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_loading_refuses_tampered_weights(random_checkpoint, tmp_path: Path) -> None:
    prefix, _ = random_checkpoint
    import_tf_checkpoint(prefix, tmp_path / "prnet")
    weights = tmp_path / "prnet" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable, match="fails its sha256 check"):
        PRNet.from_pretrained(tmp_path / "prnet")
    with pytest.raises(ModelUnavailable, match="t2f download"):
        PRNet.from_pretrained(tmp_path / "nothing-here")


def test_channels_last_gives_the_same_position_maps() -> None:
    from t2f.stages.prnet.checkpoint import PRNetConfig

    images = np.random.default_rng(5).random((2, 256, 256, 3), dtype=np.float32)
    plain = PRNet(randomised_resfcn256(0), PRNetConfig()).predict(images)
    assert plain.shape == (2, 256, 256, 3) and plain.std() > 0.05  # a network whose output depends on the input
    fast = PRNet(randomised_resfcn256(0), PRNetConfig(), channels_last=True).predict(images)
    np.testing.assert_allclose(fast, plain, atol=1e-4)


@pytest.mark.parametrize(("dtype", "mean_px"), [(torch.float16, 1.0), (torch.bfloat16, 5.0)])
def test_half_precision_position_maps_follow_float32(dtype: torch.dtype, mean_px: float) -> None:
    """The CUDA default (float16, channels-last) run through the same casts on the CPU.

    With random He-scaled weights the error is larger than a trained network's would be; measured
    here: float16 0.36 px, bfloat16 2.3 px mean over the map (in crop pixels).
    """
    from t2f.stages.prnet.checkpoint import PRNetConfig

    config = PRNetConfig()
    image = np.random.default_rng(6).random((1, 256, 256, 3), dtype=np.float32)
    reference = PRNet(randomised_resfcn256(1), config).predict(image)
    half = PRNet(randomised_resfcn256(1), config, dtype=dtype, channels_last=True)
    assert next(half.network.parameters()).dtype == dtype
    out = half.predict(image)
    assert out.dtype == np.float32 and out.shape == reference.shape and np.isfinite(out).all()
    assert np.abs(out - reference).mean() * config.max_pos < mean_px
