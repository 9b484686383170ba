"""Benchmark: the prompt filter's recall, false positives and time per prompt, old against new.

    .venv/bin/python bench/moderation.py --out bench/results/moderation-cpu.md

Data: the shared corpus (../shared/moderation/corpus.tsv, or T2F_SHARED_DIR) judged by the shipped
lists, and the larger lists in tests/moderation_cases.py judged by the shipped lists plus their
EXTRA_TERMS. The old filter is t2f/moderation.py at commit ececacc, loaded from git in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import ROOT, machine, publish, shared_dir, table
from moderation_cases import ALLOW_CASES, BLOCK_CASES, EXTRA_TERMS

from t2f.serve.moderation import PromptFilter

OLD_COMMIT = "ececacc"
Judge = Callable[[str, str], bool]  # (prompt, negative) -> blocked?


def git_show(path: str) -> str:
    return subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def old_filter() -> types.ModuleType | None:
    """The filter module as it was before the rewrite, or ``None`` outside a git checkout."""
    try:
        source = git_show("t2f/moderation.py")
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("t2f_moderation_old")
    module.__file__ = str(ROOT / "t2f" / "moderation.py")  # only for its default path; the list comes from git
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"{OLD_COMMIT}:t2f/moderation.py", "exec"), module.__dict__)
    return module


def corpus() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    path = shared_dir() / "moderation" / "corpus.tsv"
    block, allow = [], []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                expect, prompt, negative = [*line.split("\t"), "", ""][:3]
                (block if expect == "block" else allow).append((prompt, negative))
    return block, allow


def rate(judge: Judge, cases: list[tuple[str, str]]) -> str:
    hits = sum(judge(prompt, negative) for prompt, negative in cases)
    return f"{hits}/{len(cases)} ({100 * hits / len(cases):.0f} %)" if cases else "n/a"


def microseconds(judge: Judge, cases: list[tuple[str, str]], rounds: int) -> str:
    judge(*cases[0])  # warm-up
    start = time.perf_counter()
    for _ in range(rounds):
        for prompt, negative in cases:
            judge(prompt, negative)
    return f"{(time.perf_counter() - start) / (rounds * len(cases)) * 1e6:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="passes over every prompt for the timing")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) here")
    args = parser.parse_args()

    corpus_block, corpus_allow = corpus()
    everything = corpus_block + corpus_allow + BLOCK_CASES + ALLOW_CASES
    filters: list[tuple[str, Judge, Judge]] = []
    if (old := old_filter()) is not None:
        # The old filter with its own list; it never read negative prompts: judged as deployed, on the prompt.
        shipped = old.PromptFilter.from_lines(git_show("t2f/data/blocklist.txt").splitlines())
        strict = shipped.with_terms(EXTRA_TERMS)
        filters.append(
            (
                f"old ({OLD_COMMIT}), prompt only",
                lambda p, n: shipped.first_match(p) is not None,
                lambda p, n: strict.first_match(p) is not None,
            )
        )
    new, new_strict = PromptFilter.from_file(), PromptFilter.from_file().with_terms(EXTRA_TERMS)
    filters.append(("new", lambda p, n: not new.judge(p, n).allowed, lambda p, n: not new_strict.judge(p, n).allowed))

    rows = []
    for name, judge, judge_strict in filters:
        rows.append(
            [
                name,
                rate(judge, corpus_block),
                rate(judge, corpus_allow),
                rate(judge_strict, BLOCK_CASES),
                rate(judge_strict, ALLOW_CASES),
                microseconds(judge_strict, everything, args.rounds),
            ]
        )
    headers = ["filter", "corpus recall", "corpus false positives", "own recall", "own false positives", "µs / prompt"]
    report = "\n".join(
        [
            "# Prompt filter benchmark",
            "",
            f"Machine: {machine()}. Recall: blocked share of the prompts that must be refused (higher is better); "
            "false positives: blocked share of the prompts that must pass (lower is better). Corpus: the shared "
            "moderation corpus with the shipped lists; own lists: tests/moderation_cases.py with the shipped lists "
            f"plus {', '.join(EXTRA_TERMS)}. Time: mean microseconds per prompt pair over every prompt, "
            f"{args.rounds} passes, one core.",
            "",
            table(headers, rows),
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
