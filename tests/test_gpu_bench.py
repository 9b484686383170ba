"""bench/gpu.py end to end on the CPU with the tiny model (``--smoke``): the table it prints and writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs the bench, then says which heavy modules it imported: a bare GPU host has no TensorFlow or mtcnn.
SCRIPT = """
import runpy, sys
sys.argv = ["bench/gpu.py", "--smoke", "--out", sys.argv[1]]
runpy.run_path("bench/gpu.py", run_name="__main__")
print("IMPORTED", sorted(m for m in ("tensorflow", "mtcnn", "discord") if m in sys.modules))
"""


def test_gpu_bench_smoke_prints_and_writes_one_table(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu-cpu-smoke.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "T2F_SHARED_DIR": str(shared_dir)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED []"
    report = out.read_text(encoding="utf-8")
    assert report.strip() in done.stdout  # the printed table is the written one
    assert report.startswith("# GPU fast path benchmark (CPU smoke test, NOT a GPU result)")
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert rows[0] == "| measurement | eager | fast path (eager + buckets (no CUDA)) | eager / fast |"
    names = [row.split(" | ")[0][2:] for row in rows[2:]]  # after the header and its --- line
    assert names == [
        "text-to-image, batch 1: ms per batch", "text-to-image, batch 1: faces per minute",
        "text-to-image, batch 2: ms per batch", "text-to-image, batch 2: faces per minute",
        "PRNet network, batch 1: ms per call", "PRNet network, batch 2: ms per call",
        "service, one member at a time: submit -> files p50", "service, one member at a time: p95",
        "service, 4-job burst: faces per minute", "service, 4-job burst: latency p50",
        "start-up warm-up, cold (empty compile cache)", "start-up warm-up, restart with the cache",
    ]  # fmt: skip
    assert all(len(row.split(" | ")) == 4 for row in rows)
    assert "the issue's targets apply to a GPU run only" in report
