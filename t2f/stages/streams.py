"""CUDA streams for model calls made off the GPU thread.

Work queued on one CUDA stream runs in order. The GPU thread queues a whole batch's denoising at once
(its graph replays return before the GPU has run them), so a face found on the faces thread while the
next batch paints would, on the same stream, wait for that painting to finish before its own few
milliseconds of kernels ran. On a stream of its own it runs beside the painting instead, and its
synchronisation waits for its own work only.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch


def side_stream(device: torch.device | str) -> AbstractContextManager[object]:
    """Make a CUDA stream from PyTorch's pool current for ``device`` within the block; on a CPU, nothing."""
    device = torch.device(device)
    return torch.cuda.stream(torch.cuda.Stream(device) if device.type == "cuda" else None)
