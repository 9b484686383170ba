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


def test_gpu_bench_smoke_prints_and_writes_its_tables(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu-cpu-smoke.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "T2F_SHARED_DIR": str(shared_dir)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED []"
    report = out.read_text(encoding="utf-8")
    assert report.strip() in done.stdout  # the printed tables are the written ones
    assert report.startswith("# GPU fast path and fast profile (CPU smoke test, NOT a GPU result)")
    assert "Versions: python " in report and ", diffusers " in report and ", transformers " in report
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in report.splitlines() if line[:2] == "| "]
    rows = {row[0]: row[1:] for row in cells}
    assert [name for name in rows if name in ("painting", "serving", "start-up and checks")] == [
        "painting",
        "serving",
        "start-up and checks",
    ]
    # Painting: every bucket in the three configurations, measured.
    for b in (1, 2):
        assert all(cell.endswith(" ms") for cell in rows[f"text-to-image, batch {b}: ms per batch"][:3])
        assert rows[f"text-to-image, batch {b}, the fast profile eagerly"][0].endswith(" ms")
        assert rows[f"text-to-image, batch {b}, the decode not compiled (HEAD's fast path)"][1].endswith(" ms")
        assert all(c.endswith(" ms") for c in rows[f"VAE decode to bytes alone, batch {b}: eager -> compiled"][:2])
    assert rows["PRNet.predict (numpy in and out), batch 1"][3] == "≤ 1 ms"
    # Serving: one member and bursts like members' in each profile, the bursts twice here, with their spread.
    p50 = rows["/face one member at a time, submit -> files p50"]
    assert all(cell.endswith(" s") for cell in p50[:3])
    burst = rows["4-job burst like members', faces per minute: median (spread)"]
    assert burst[1].endswith(", 2 samples)") and burst[2].endswith(", 2 samples)") and burst[0].isdigit()
    assert all(float(c) >= 1 for c in rows["4-job burst, paints per job (repaints included)"][:3])
    # Start-up: the restart as a whole process; nothing recompiled, no CUDA graph skipped, no graph break.
    assert rows["warm restart: the whole process, start -> ready (imports, models from disk, warm-up)"][1].endswith(")")
    assert rows["CUDA graphs skipped (`cudagraph_skips`): cold warm-up / restart / serving after"][1] == "0 / 0 / 0"
    assert rows["frames compiled after the warm-up (a recompile; should be 0)"][1] == "0"
    # Pictures: eager on both sides paints the same pixels; DeepCache moves them less than another seed does.
    assert rows["graphs against eager, quality profile"][0] == "0.00"
    deepcache = float(rows["DeepCache alone, 5 steps, eagerly, against the quality picture (5 steps)"][0])
    scale = float(
        rows["other seeds, eagerly, against the quality picture (5 steps) (a whole other picture, for scale)"][0]
    )
    assert 0 < deepcache < scale
    assert "Not measured" not in report and "Fell back" not in report
    assert "the targets apply to a GPU run only" in report
    said = [line for line in report.splitlines() if line.startswith("The warm-up's log line (")]
    assert [line.split(")", 1)[0] for line in said] == [
        "The warm-up's log line (cold",
        "The warm-up's log line (restart",
    ]
