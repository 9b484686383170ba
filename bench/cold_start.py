"""Cold start of each CLI verb: wall seconds from process start to exit, this tree against another.

    python bench/cold_start.py --before ../t2f-before --out bench/results/cold-start-cpu.md

``--before`` is a checkout of an earlier commit (e.g. ``git worktree add ../t2f-before ececacc``); both
trees run with the same interpreter as ``python -m t2f`` (PYTHONPATH set to the tree), so only the
code differs. Each command runs once to warm the OS file cache, then ``--runs`` times; the median counts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, publish, table

# What a user types, and why it should be quick: each answers without loading a model.
COMMANDS = [
    ("t2f --help", ["-m", "t2f", "--help"]),
    ("t2f generate --help", ["-m", "t2f", "generate", "--help"]),
    ("t2f reconstruct --help", ["-m", "t2f", "reconstruct", "--help"]),
    ("t2f reconstruct /nonexistent.jpg", ["-m", "t2f", "reconstruct", "/nonexistent.jpg"]),
    ("t2f prnet import --help", ["-m", "t2f", "prnet", "import", "--help"]),
    ("t2f download --help", ["-m", "t2f", "download", "--help"]),
    ("t2f doctor --help", ["-m", "t2f", "doctor", "--help"]),
    ("python bot.py --check-config", ["bot.py", "--check-config"]),
]
FAKE_TOKEN = "A" * 24 + "." + "B" * 6 + "." + "C" * 27  # the right shape; never sent anywhere


def run(tree: Path, args: list[str], workdir: Path) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(tree), "DISCORD_TOKEN": FAKE_TOKEN}
    env.pop("T2F_SHARED_DIR", None)
    command = [sys.executable, *(str(tree / a) if a == "bot.py" else a for a in args)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, check=False)
    return time.perf_counter() - started, done.returncode


def median_seconds(tree: Path, args: list[str], runs: int, workdir: Path) -> tuple[float, int]:
    run(tree, args, workdir)  # warm the file cache
    samples = [run(tree, args, workdir) for _ in range(runs)]
    return statistics.median(s for s, _ in samples), samples[-1][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an earlier checkout to compare with")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    trees = [("before", args.before.resolve())] if args.before else []
    trees.append(("now", ROOT))
    rows = []
    with tempfile.TemporaryDirectory() as workdir:  # no .env there: defaults only
        for label, argv in COMMANDS:
            cells = [f"`{label}`"]
            for _, tree in trees:
                seconds, code = median_seconds(tree, argv, args.runs, Path(workdir))
                cells.append(f"{seconds:.2f} (exit {code})")
            if len(trees) == 2:
                before, now = (float(cell.split()[0]) for cell in cells[1:])
                cells.append(f"{before / now:.1f}x")
            rows.append(cells)
    headers = ["command", *(f"{label} s" for label, _ in trees)] + (["speed-up"] if len(trees) == 2 else [])
    report = "\n\n".join(
        [
            "# CLI cold start",
            f"Machine: {machine()}. Median of {args.runs} runs after one warm-up run, wall seconds from process start "
            "to exit (`python -m t2f`, same interpreter for both trees). Target: 2 s or less for each.",
            table(headers, rows),
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
