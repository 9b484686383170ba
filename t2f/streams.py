"""CUDA streams for model calls made off the GPU thread, one per calling thread.

Work queued on one CUDA stream runs in order. The GPU thread queues the next batch's denoising on the
default stream, and CUDA graph replays return before the GPU has run them, so a face found or drawn
on another thread meanwhile would, on that stream, wait behind the queued painting before its own few
milliseconds of kernels ran. On a stream of its own it runs beside the painting, and its
synchronisation waits for its own work only. (Why, not a measurement: no GPU was lent since.)

Each thread keeps one stream: PyTorch's caching allocator reuses a freed block only on the stream
that allocated it, so a fresh pool stream per call would cache up to 32 copies of the same buffers.
torch is imported only when a :class:`StreamPerThread` is made (this module sits below the Discord side).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class StreamPerThread:
    """``with streams():`` runs the block on the calling thread's own CUDA stream of ``device``; on a CPU, as is."""

    def __init__(self, device: torch.device | str) -> None:
        import torch

        self.device = torch.device(device)
        self._streams: dict[int, torch.cuda.Stream] = {}
        self._lock = threading.Lock()

    def stream(self) -> torch.cuda.Stream | None:
        """The calling thread's stream (made on its first call), or ``None`` off CUDA."""
        import torch

        if self.device.type != "cuda":
            return None
        with self._lock:
            if (thread := threading.get_ident()) not in self._streams:
                self._streams[thread] = torch.cuda.Stream(self.device)
            return self._streams[thread]

    def __call__(self) -> AbstractContextManager[object]:
        import torch

        return torch.cuda.stream(self.stream())  # None: a no-op
