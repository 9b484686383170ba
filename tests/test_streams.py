"""t2f.stages.streams: work off the GPU thread gets a CUDA stream of its own; on a CPU nothing changes."""

from __future__ import annotations

import pytest
import torch

from t2f.stages.streams import side_stream


def test_on_a_cpu_the_block_just_runs() -> None:
    with side_stream("cpu") as entered:
        total = torch.arange(4.0).sum()
    assert entered is None and float(total) == 6.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA streams need a CUDA GPU; this machine has none")
def test_on_a_gpu_the_block_runs_on_another_stream() -> None:
    default = torch.cuda.current_stream()
    with side_stream("cuda"):
        inside = torch.cuda.current_stream()
        total = torch.arange(4.0, device="cuda").sum()
    assert inside != default and torch.cuda.current_stream() == default
    assert float(total) == 6.0
