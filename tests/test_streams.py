"""t2f.streams: work off the GPU thread gets a CUDA stream of its own, one per thread; on a CPU nothing changes."""

from __future__ import annotations

import threading

import pytest
import torch

from t2f.streams import StreamPerThread


def test_on_a_cpu_the_block_just_runs() -> None:
    streams = StreamPerThread("cpu")
    with streams() as entered:
        total = torch.arange(4.0).sum()
    assert entered is None and float(total) == 6.0 and streams.stream() is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA streams need a CUDA GPU; this machine has none")
def test_on_a_gpu_each_thread_keeps_one_stream_of_its_own() -> None:
    streams = StreamPerThread("cuda")
    default = torch.cuda.current_stream()
    with streams():
        inside = torch.cuda.current_stream()
        total = float(torch.arange(4.0, device="cuda").sum())  # read on its stream, which .item() waits for
    assert inside != default and torch.cuda.current_stream() == default and total == 6.0
    assert streams.stream() == streams.stream() == inside  # the same stream on every call of a thread
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(streams.stream()))
    thread.start()
    thread.join()
    assert other[0] is not None and other[0] != inside
