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
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED []"
    report = out.read_text(encoding="utf-8")
    assert report.strip() in done.stdout  # the printed table is the written one
    assert report.startswith("# GPU fast path benchmark (CPU smoke test, NOT a GPU result)")
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert rows[0] == "| measurement | eager | fast path (eager + buckets (no CUDA)) | speed-up |"
    names = [row.split(" | ")[0][2:] for row in rows[2:]]  # after the header and its --- line
    whole, detect = (
        "service, whole-image crop: ",
        "service, detection: 10 ms stand-in on the GPU thread -> PyTorch MTCNN on cpu, own thread: ",
    )
    service = [
        "one member at a time: submit -> files p50",
        "one member at a time: p95",
        "4-job burst, faces per minute",
        "4-job burst, latency p50",
    ]
    assert names == [
        "text-to-image, batch 1: ms per batch",
        "text-to-image, batch 1: faces per minute",
        "text-to-image, batch 2: ms per batch",
        "text-to-image, batch 2: faces per minute",
        "PRNet.predict (numpy in and out), batch 1: ms per call",
        "PRNet.predict (numpy in and out), batch 2: ms per call",
        "PRNet.predict, batch 1, fast path in channels-last instead",
        "PRNet.predict, batch 2, fast path in channels-last instead",
        *(whole + row for row in service),
        *(detect + row for row in service),
        "MTCNN, one 512 px face photo: TensorFlow on the CPU (10 ms stand-in) -> PyTorch on cpu",
        "MTCNN, one 1024 px face photo: TensorFlow on the CPU (10 ms stand-in) -> PyTorch on cpu",
        "one face's files (PNG, 3 meshes, preview, turntable; CPU): 1 thread -> 2 helpers",
        "one face's files: 1 thread -> 2 helpers, preview and turntable drawn by PyTorch on cpu",
        "start-up warm-up, cold (empty compile cache)",
        "start-up warm-up, restart with the cache",
        "graphs compiled after the warm-up (painting and serving; should be 0)",
        "same seed, eager vs fast image: mean absolute difference (0-255)",
    ]
    assert all(len(row.split(" | ")) == 4 for row in rows)
    measured = [row.split(" | ")[1:3] for row in rows[2:17]]  # every section ran: no cell left empty
    assert all(cell not in ("", "—") for pair in measured for cell in pair), measured
    assert "Not measured" not in report
    assert rows[-1].split(" | ")[2] == "0.00"  # eager on both sides here: the same seed paints the same pixels
    assert "the issue's targets apply to a GPU run only" in report
    # Under the table, where each warm-up's time went: the first run of each bucket, then the ETA's timing
    # runs, measured cold and taken from the last start's file on the restart.
    said = [line for line in report.splitlines() if line.startswith("The warm-up's log line (")]
    assert [line.split(")", 1)[0] for line in said] == [
        "The warm-up's log line (cold",
        "The warm-up's log line (restart with the cache",
    ]
    assert "; batch 1 " in said[0] and ", batch 2 " in said[0] and ", batch times " in said[0]
    assert ", batch times kept from the last start " in said[1]
