"""Import the official PRNet TensorFlow checkpoint into a safetensors file for :class:`ResFCN256`.

The checkpoint (``256_256_resfcn256_weight.index`` + ``.data-00000-of-00001``) holds 245 network
variables under ``resfcn256/`` plus Adam slots, which are ignored. It is read with TensorFlow's
own checkpoint reader, so no TF1 graph is needed. Conv kernels are stored [kh, kw, in, out] and
transposed-conv kernels [kh, kw, out, in]; PyTorch wants [out, in, kh, kw] and [in, out, kh, kw],
both the axis permutation (3, 2, 0, 1).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from t2f.errors import ModelUnavailable
from t2f.files.outputs import json_bytes, write_atomic
from t2f.report import WeightsProvenance
from t2f.stages.prnet.network import DECODER_LAYERS, ENCODER_BLOCKS, ResFCN256

SCOPE = "resfcn256"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


@dataclass(frozen=True)
class PRNetConfig:
    """Hyper-parameters saved beside the weights (``config.json``)."""

    base_width: int = 16
    resolution: int = 256
    max_pos: float = 256 * 1.1  # the network's [0, 1] output times this gives crop pixels
    sha256: str = ""  # of model.safetensors; checked on load
    source: str = ""  # what the weights were converted from
    source_sha256: str = ""  # of the TF checkpoint's data file: tells the official weights from any other


def _suffix(index: int) -> str:
    return "" if index == 0 else f"_{index}"


def _bn(tf_scope: str, torch_prefix: str) -> dict[str, str]:
    return {f"{tf_scope}/BatchNorm/{tf}": f"{torch_prefix}.{pt}" for tf, pt in _BN_NAMES.items()}


def tf_to_torch_names() -> dict[str, str]:
    """Every one of the 245 TF variable names mapped to its ``ResFCN256`` state-dict key."""
    names = {f"{SCOPE}/Conv/weights": "conv.conv.weight", **_bn(f"{SCOPE}/Conv", "conv.bn")}
    for i, (_, stride) in enumerate(ENCODER_BLOCKS):
        tf, pt = f"{SCOPE}/resBlock{_suffix(i)}", f"res_blocks.{i}"
        if stride != 1:
            names[f"{tf}/shortcut/weights"] = f"{pt}.shortcut.weight"
        for layer, module in (("Conv", "conv"), ("Conv_1", "conv_1")):
            names[f"{tf}/{layer}/weights"] = f"{pt}.{module}.conv.weight"
            names.update(_bn(f"{tf}/{layer}", f"{pt}.{module}.bn"))
        names[f"{tf}/Conv_2/weights"] = f"{pt}.conv_2.weight"
        names.update({f"{tf}/BatchNorm/{k}": f"{pt}.bn.{v}" for k, v in _BN_NAMES.items()})
    for i in range(len(DECODER_LAYERS) + 3):
        tf, pt = f"{SCOPE}/Conv2d_transpose{_suffix(i)}", f"decoder.{i}"
        names[f"{tf}/weights"] = f"{pt}.conv.weight"
        names.update(_bn(tf, f"{pt}.bn"))
    return names


def convert_tensor(value: np.ndarray) -> torch.Tensor:
    """TF layout to PyTorch layout: 4-D kernels permuted (3, 2, 0, 1), vectors unchanged."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim == 4:
        array = array.transpose(3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def state_dict_from_variables(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map TF variables (name -> array) to a complete ``ResFCN256`` state dict.

    Raises
    ------
    ModelUnavailable
        Listing every missing or mis-shaped variable, so a wrong file is refused whole.
    """
    model = ResFCN256()
    expected = model.state_dict()
    problems = []
    state = {}
    for tf_name, torch_name in tf_to_torch_names().items():
        if tf_name not in variables:
            problems.append(f"missing {tf_name}")
            continue
        tensor = convert_tensor(variables[tf_name])
        if tuple(tensor.shape) != tuple(expected[torch_name].shape):
            tf_shape = list(np.shape(variables[tf_name]))
            problems.append(f"{tf_name} has shape {tf_shape}, expected a tensor for {list(expected[torch_name].shape)}")
            continue
        state[torch_name] = tensor
    if problems:
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ModelUnavailable(f"The checkpoint is not PRNet's ResFCN256 ({len(problems)} problems): {shown}.")
    for key, value in expected.items():
        state.setdefault(key, value)  # num_batches_tracked counters, unused at inference
    return state


def read_tf_checkpoint(prefix: Path) -> dict[str, np.ndarray]:
    """Read every ``resfcn256/`` variable of a TF checkpoint (``prefix`` without .index/.data)."""
    index = Path(f"{prefix}.index")
    if not index.is_file():
        raise ModelUnavailable(f"No TensorFlow checkpoint at '{prefix}' (expected {index.name} beside it).")
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(prefix))
        names = [n for n, _ in tf.train.list_variables(str(prefix)) if n.startswith(f"{SCOPE}/")]
        return {n: reader.get_tensor(n) for n in names if not n.endswith(("/Adam", "/Adam_1"))}
    except (tf.errors.OpError, ValueError) as exc:
        raise ModelUnavailable(f"The checkpoint at '{prefix}' could not be read: {type(exc).__name__}.") from exc


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_official(config: PRNetConfig) -> bool:
    """True when the weights were converted from the official checkpoint (by its data file's sha256)."""
    from t2f.stages.prnet.upstream import CHECKPOINT_DATA_SHA256

    return config.source_sha256 == CHECKPOINT_DATA_SHA256


def provenance(config: PRNetConfig) -> WeightsProvenance:
    """What a face report says about these weights."""
    return WeightsProvenance(
        source=config.source or "unknown",
        sha256=config.sha256 or None,
        checkpoint_sha256=config.source_sha256 or None,
        official=is_official(config),
    )


def import_tf_checkpoint(prefix: Path, out_dir: Path) -> PRNetConfig:
    """Convert a TF PRNet checkpoint into ``out_dir/model.safetensors`` + ``config.json``.

    Both files are written under temporary names and renamed, so a failure leaves nothing behind.
    """
    from safetensors.torch import save_file

    state = state_dict_from_variables(read_tf_checkpoint(prefix))
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_weights = out_dir / f".{WEIGHTS_FILE}.part"
    try:
        save_file(state, str(tmp_weights), metadata={"format": "pt", "source": Path(prefix).name})
        data_file = Path(f"{prefix}.data-00000-of-00001")
        config = PRNetConfig(
            sha256=file_sha256(tmp_weights),
            source=Path(prefix).name,
            source_sha256=file_sha256(data_file) if data_file.is_file() else "",
        )
        tmp_weights.replace(out_dir / WEIGHTS_FILE)
    finally:
        tmp_weights.unlink(missing_ok=True)
    write_atomic(out_dir / CONFIG_FILE, json_bytes(asdict(config)))
    return config
