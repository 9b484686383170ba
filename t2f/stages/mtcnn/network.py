"""MTCNN's three networks (P-Net, R-Net, O-Net) in PyTorch, layer for layer as the ``mtcnn`` package's Keras ones.

The ``mtcnn`` wheel (PyPI, 1.0.0) ships its trained weights as three joblib files of Keras arrays
(``mtcnn/assets/weights/{pnet,rnet,onet}.lz4``, 2 MB in all). They are read here without importing
the package, whose ``__init__`` imports TensorFlow: the point of this port is a detector that runs
where PyTorch does, on the GPU beside PRNet, with no TensorFlow at all.

Keras differs from PyTorch in three places that matter for the weights to mean the same thing:
kernels are (kh, kw, in, out), not (out, in, kh, kw); the 'same' max-pools pad one column and row
after for the map sizes they meet (P-Net's 2 x 2 on any size, R-Net's and O-Net's 3 x 3 on their fixed
22 and 46 px maps), which is PyTorch's ``ceil_mode``; and the dense layers flatten an NHWC map whose H and W were
swapped first (``Permute((2, 1, 3))``), i.e. (W, H, C) order.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

NETWORKS = ("pnet", "rnet", "onet")


def wheel_weights_dir() -> Path:
    """The folder of the installed ``mtcnn`` wheel's weight files (the package itself is not imported).

    Raises
    ------
    FileNotFoundError
        When the ``mtcnn`` package is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("MTCNN's weights come with the mtcnn package: pip install mtcnn==1.0.0")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights"


def load_keras_arrays(name: str, folder: Path | None = None) -> list[np.ndarray]:
    """The Keras weight list of network ``name`` ("pnet", "rnet" or "onet"), in ``model.get_weights()`` order."""
    import joblib  # the wheel's own format (an lz4-compressed pickle); joblib and lz4 are mtcnn's dependencies

    path = (folder or wheel_weights_dir()) / f"{name}.lz4"
    arrays = joblib.load(path)
    if not isinstance(arrays, list) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise ValueError(f"{path} is not a list of weight arrays")
    return arrays


def _conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel)


class PNet(nn.Module):
    """Proposal network, fully convolutional: (N, 3, H, W) -> box offsets (N, 4, h, w), face odds (N, 2, h, w).

    Each output cell looks at a 12 x 12 window of the input, 2 px apart.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = _conv(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = _conv(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = _conv(32, 4, 1), _conv(32, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)  # Keras 'same' pool
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_1(x), F.softmax(self.conv4_2(x), dim=1)


def _flatten_keras(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) flattened in the order Keras' ``Permute((2, 1, 3))`` then ``Flatten`` gives: W, H, C."""
    return x.permute(0, 3, 2, 1).flatten(1)


class RNet(nn.Module):
    """Refinement network: 24 x 24 patches (N, 3, 24, 24) -> box offsets (N, 4), face odds (N, 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = _conv(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = _conv(48, 64, 2), nn.PReLU(64)
        self.fc4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.fc5_1, self.fc5_2 = nn.Linear(128, 4), nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2)
        x = self.prelu4(self.fc4(_flatten_keras(self.prelu3(self.conv3(x)))))
        return self.fc5_1(x), F.softmax(self.fc5_2(x), dim=1)


class ONet(nn.Module):
    """Output network: 48 x 48 patches (N, 3, 48, 48) -> box offsets (N, 4), landmarks (N, 10), face odds (N, 2).

    The landmarks are five x then five y, as fractions of the patch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = _conv(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = _conv(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = _conv(64, 128, 2), nn.PReLU(128)
        self.fc5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.fc6_1, self.fc6_2, self.fc6_3 = nn.Linear(256, 4), nn.Linear(256, 10), nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.fc5(_flatten_keras(self.prelu4(self.conv4(x)))))
        return self.fc6_1(x), self.fc6_2(x), F.softmax(self.fc6_3(x), dim=1)


def load_keras_weights(network: nn.Module, arrays: list[np.ndarray]) -> None:
    """Copy a Keras weight list (layer order, kernels HWIO / (in, out)) into ``network``'s parameters.

    Raises
    ------
    ValueError
        When the list does not have one array per parameter with the matching size.
    """
    params = list(network.parameters())  # registration order = Keras layer order: weight, bias, alpha, ...
    if len(params) != len(arrays):
        raise ValueError(f"{type(network).__name__} has {len(params)} parameters, the weights {len(arrays)}")
    with torch.no_grad():
        for param, array in zip(params, arrays, strict=True):
            if array.ndim == 4:  # conv kernel (kh, kw, in, out) -> (out, in, kh, kw)
                array = array.transpose(3, 2, 0, 1)
            elif array.ndim == 2:  # dense kernel (in, out) -> (out, in)
                array = array.T
            elif array.ndim == 3:  # PReLU alpha shared over H and W: (1, 1, C) -> (C,)
                array = array.reshape(-1)
            if tuple(array.shape) != tuple(param.shape):
                raise ValueError(f"{type(network).__name__}: weight {array.shape} does not fit {tuple(param.shape)}")
            param.copy_(torch.from_numpy(np.ascontiguousarray(array)))


def load_networks(folder: Path | None = None, *, device: torch.device | str = "cpu") -> tuple[PNet, RNet, ONet]:
    """The three networks with the ``mtcnn`` wheel's weights (or those in ``folder``), in eval mode on ``device``."""
    networks = (PNet(), RNet(), ONet())
    for name, network in zip(NETWORKS, networks, strict=True):
        load_keras_weights(network, load_keras_arrays(name, folder))
        network.eval().requires_grad_(False).to(device)
    return networks
