"""ResFCN256, PRNet's encoder-decoder, in PyTorch, layer for layer as the TF1 original.

The original is built with ``tf.contrib.layers`` in NHWC with 'SAME' padding, no biases,
BatchNorm (epsilon 1e-3) after every convolution and a sigmoid at the end. TF's 'SAME' pads
asymmetrically for even kernels (a 4x4 stride-1 conv pads 1 before and 2 after), which no
PyTorch ``padding=`` argument reproduces, so the padding is applied explicitly here. The module
names mirror the TF scopes so the checkpoint importer can map names one to one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 1e-3  # tf.contrib.layers.batch_norm's epsilon, not PyTorch's 1e-5.


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding TF's 'SAME' uses along one axis of length ``size``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Bias-free ``Conv2d`` with TF 'SAME' padding (asymmetric when the kernel is even)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = tf_same_padding(x.shape[-2], k, s)
        left, right = tf_same_padding(x.shape[-1], k, s)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class SameConvTranspose2d(nn.ConvTranspose2d):
    """Bias-free 4x4 ``ConvTranspose2d`` whose output is exactly ``stride`` times the input, as TF 'SAME'.

    Stride 2 matches PyTorch's ``padding=1``. Stride 1 needs the input padded (2 before, 1 after)
    and ``padding=3``, which crops the full 'VALID' output to the window TF keeps.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        super().__init__(in_channels, out_channels, 4, stride=stride, padding=1 if stride == 2 else 3, bias=False)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.stride[0] == 1:
            x = F.pad(x, (2, 1, 2, 1))
        return super().forward(x)


class ConvBN(nn.Module):
    """conv (no bias) -> BatchNorm -> optional ReLU: ``tf.contrib.layers.conv2d`` with ``normalizer_fn``."""

    def __init__(self, conv: nn.Module, channels: int, *, relu: bool = True) -> None:
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class ResBlock(nn.Module):
    """PRNet's residual block: 1x1 (C/2) -> 4x4 stride s (C/2) -> 1x1 (C), plus shortcut, then BN and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.shortcut = (
            SameConv2d(in_channels, out_channels, 1, stride) if stride != 1 or in_channels != out_channels else None
        )
        self.conv = ConvBN(SameConv2d(in_channels, half, 1), half)
        self.conv_1 = ConvBN(SameConv2d(half, half, 4, stride), half)
        self.conv_2 = SameConv2d(half, out_channels, 1)  # no BN, no activation before the sum
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.bn(self.conv_2(self.conv_1(self.conv(x))) + shortcut))


# (out channels, stride) of resBlock .. resBlock_9 and of Conv2d_transpose .. Conv2d_transpose_16, for base width 16.
ENCODER_BLOCKS = ((2, 2), (2, 1), (4, 2), (4, 1), (8, 2), (8, 1), (16, 2), (16, 1), (32, 2), (32, 1))
DECODER_LAYERS = (
    (32, 1),
    (16, 2),
    (16, 1),
    (16, 1),
    (8, 2),
    (8, 1),
    (8, 1),
    (4, 2),
    (4, 1),
    (4, 1),
    (2, 2),
    (2, 1),
    (1, 2),
    (1, 1),
)


class ResFCN256(nn.Module):
    """PRNet's network: (N, 3, 256, 256) RGB in [0, 1] -> (N, 3, 256, 256) position map in [0, 1].

    ``base`` is the width multiplier (16 in the official model); decoder layers 14-16 output 3
    channels and the last applies BatchNorm then a sigmoid.
    """

    def __init__(self, base: int = 16) -> None:
        super().__init__()
        self.conv = ConvBN(SameConv2d(3, base, 4), base)
        channels = base
        blocks = []
        for multiple, stride in ENCODER_BLOCKS:
            blocks.append(ResBlock(channels, base * multiple, stride))
            channels = base * multiple
        self.res_blocks = nn.ModuleList(blocks)
        layers = []
        for multiple, stride in DECODER_LAYERS:
            layers.append(ConvBN(SameConvTranspose2d(channels, base * multiple, stride), base * multiple))
            channels = base * multiple
        for index in range(3):
            layers.append(ConvBN(SameConvTranspose2d(channels, 3, 1), 3, relu=index < 2))
            channels = 3
        self.decoder = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        for block in self.res_blocks:
            x = block(x)
        for layer in self.decoder:
            x = layer(x)
        return torch.sigmoid(x)
