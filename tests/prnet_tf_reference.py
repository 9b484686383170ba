"""An independent TensorFlow build of PRNet's ResFCN256, straight from the spec (../shared/docs/prnet.md §1).

Used only by tests: it writes a TF checkpoint with the official variable names and shapes
(filled with random values) and runs the network with TF's own 'SAME' convolutions, so the
PyTorch port and the importer are checked against real TF semantics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ENCODER = [(32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]
DECODER = [
    (512, 1),
    (256, 2),
    (256, 1),
    (256, 1),
    (128, 2),
    (128, 1),
    (128, 1),
    (64, 2),
    (64, 1),
    (64, 1),
    (32, 2),
    (32, 1),
    (16, 2),
    (16, 1),
    (3, 1),
    (3, 1),
    (3, 1),
]


def read_variable_shapes(tsv: Path) -> dict[str, list[int]]:
    """The official variable list: name -> shape."""
    shapes = {}
    for line in tsv.read_text(encoding="utf-8").splitlines()[2:]:
        name, shape = line.split("\t")
        shapes[name] = [int(s) for s in shape.strip("[]").split(",")]
    return shapes


def random_variables(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random values with sane statistics (He-scaled kernels, positive variances)."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in shapes.items():
        if name.endswith("/weights"):
            fan_in = shape[0] * shape[1] * (shape[3] if "Conv2d_transpose" in name else shape[2])
            values[name] = rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        elif name.endswith("/moving_variance"):
            values[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif name.endswith("/gamma"):
            values[name] = rng.uniform(0.8, 1.2, shape).astype(np.float32)
        else:  # beta, moving_mean
            values[name] = rng.normal(0, 0.1, shape).astype(np.float32)
    return values


def write_tf_checkpoint(prefix: Path, variables: dict[str, np.ndarray], *, with_adam_slots: bool = True) -> None:
    """Write a TF1-format checkpoint (``prefix.index`` + ``prefix.data-00000-of-00001``)."""
    import tensorflow as tf

    names, tensors = list(variables), [tf.constant(v) for v in variables.values()]
    if with_adam_slots:  # the official file carries optimizer slots; the importer must ignore them
        first = names[0]
        names += [f"{first}/Adam", f"{first}/Adam_1", "beta1_power"]
        tensors += [tf.zeros_like(tensors[0]), tf.zeros_like(tensors[0]), tf.constant(0.9)]
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)


def tf_forward(variables: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """ResFCN256 in TF: (N, 256, 256, 3) float32 in [0, 1] -> (N, 256, 256, 3) sigmoid output."""
    import tensorflow as tf

    v = {k: tf.constant(a) for k, a in variables.items()}

    def bn(x: tf.Tensor, scope: str) -> tf.Tensor:
        return tf.nn.batch_normalization(
            x,
            v[f"{scope}/BatchNorm/moving_mean"],
            v[f"{scope}/BatchNorm/moving_variance"],
            v[f"{scope}/BatchNorm/beta"],
            v[f"{scope}/BatchNorm/gamma"],
            1e-3,
        )

    def conv(x: tf.Tensor, scope: str, stride: int) -> tf.Tensor:
        return tf.nn.conv2d(x, v[f"{scope}/weights"], strides=stride, padding="SAME")

    x = tf.nn.relu(bn(conv(tf.constant(images), "resfcn256/Conv", 1), "resfcn256/Conv"))
    for i, (_, stride) in enumerate(ENCODER):
        s = f"resfcn256/resBlock{'' if i == 0 else f'_{i}'}"
        shortcut = conv(x, f"{s}/shortcut", stride) if f"{s}/shortcut/weights" in v else x
        y = tf.nn.relu(bn(conv(x, f"{s}/Conv", 1), f"{s}/Conv"))
        y = tf.nn.relu(bn(conv(y, f"{s}/Conv_1", stride), f"{s}/Conv_1"))
        y = conv(y, f"{s}/Conv_2", 1)
        x = tf.nn.relu(bn(y + shortcut, s))
    for i, (channels, stride) in enumerate(DECODER):
        s = f"resfcn256/Conv2d_transpose{'' if i == 0 else f'_{i}'}"
        n, h, w, _ = x.shape
        x = tf.nn.conv2d_transpose(x, v[f"{s}/weights"], [n, h * stride, w * stride, channels], stride, padding="SAME")
        x = bn(x, s)
        x = tf.sigmoid(x) if i == len(DECODER) - 1 else tf.nn.relu(x)
    return x.numpy()
