"""Benchmark: the prompt filter's recall and false positives per category and language, and its time.

    .venv/bin/python bench/moderation.py --out bench/results/moderation-cpu.md

Data: tests/moderation_corpus.tsv (written before the lexicons were tuned: 13 languages and emoji,
refusals and look-alikes), tests/moderation_tuning.tsv (written while tuning), the shared corpus
(../shared/moderation/corpus.tsv, or T2F_SHARED_DIR), and the disguises of tests/moderation_cases.py
(with their EXTRA_TERMS, on a server that refuses suggestive words). Baseline: the filter before
issue 24 (t2f/serve/moderation.py and its three lists at commit 4573948), loaded from git and measured
in the same run. Servers' default settings (suggestive words allowed) unless said.

Time: each prompt pair is judged ``--repeats`` times and its median kept (the machine is shared, so one
sample says more about the neighbours than the filter); p50 and p99 are over the prompts.
"""

from __future__ import annotations

import argparse
import gc
import statistics
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

from t2f.serve.moderation import LANGUAGE_NAMES, PromptFilter

OLD_COMMIT = "4573948"
Judge = Callable[[str, str], bool]  # (prompt, negative) -> refused?
Row = tuple[str, str, str, str, str]  # verdict, category, language, prompt, negative
CORPUS = ROOT / "tests" / "moderation_corpus.tsv"


def git_show(path: str) -> str:
    return subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def previous_filters() -> tuple[Judge, Judge] | None:
    """The filter before issue 24 (default lists, and with EXTRA_TERMS), or ``None`` outside a git checkout."""
    try:
        source = git_show("t2f/serve/moderation.py")
        lists = [git_show(f"t2f/serve/data/{name}.txt").splitlines() for name in ("blocklist", "allowlist")]
        negative = git_show("t2f/serve/data/negative_blocklist.txt").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("t2f_moderation_previous")
    module.__file__ = str(ROOT / "t2f" / "serve" / "moderation.py")  # the lists come from git, not from here
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"{OLD_COMMIT}:t2f/serve/moderation.py", "exec"), module.__dict__)
    shipped = module.PromptFilter.from_lines(lists[0], lists[1], negative)
    strict = shipped.with_terms(EXTRA_TERMS)
    return (lambda p, n: not shipped.judge(p, n).allowed), (lambda p, n: not strict.judge(p, n).allowed)


def corpus() -> list[Row]:
    rows: list[Row] = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            verdict, category, language, prompt, *negative = line.split("\t")
            rows.append((verdict, category, language, prompt, negative[0] if negative else ""))
    return rows


def tuning_set() -> list[Row]:
    """tests/moderation_tuning.tsv: prompts written while tuning (regression tests, not a measure)."""
    rows: list[Row] = []
    for line in (ROOT / "tests" / "moderation_tuning.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            verdict, prompt = line.split("\t")[:2]
            rows.append((verdict, "", "", prompt, ""))
    return rows


def shared_corpus() -> list[Row]:
    path = shared_dir() / "moderation" / "corpus.tsv"
    rows: list[Row] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                expect, prompt, negative = [*line.split("\t"), "", ""][:3]
                rows.append(("refuse" if expect == "block" else "allow", "", "", prompt, negative))
    return rows


def share(judge: Judge, rows: list[Row], verdict: str) -> str:
    """How many of the rows with ``verdict`` the filter refused, as "n/total (p %)"."""
    chosen = [row for row in rows if row[0] == verdict]
    if not chosen:
        return "–"
    refused = sum(judge(row[3], row[4]) for row in chosen)
    return f"{refused}/{len(chosen)} ({100 * refused / len(chosen):.0f} %)"


def breakdown(title: str, key: int, names: list[str], rows: list[Row], judges: list[tuple[str, Judge]]) -> str:
    headers = [title, *(f"recall, {name}" for name, _ in judges), *(f"false positives, {name}" for name, _ in judges)]
    lines = []
    for name in names:
        chosen = [row for row in rows if row[key] == name]
        shown = LANGUAGE_NAMES.get(name, name) if key == 2 else name
        lines.append(scores(shown, chosen, judges))
    lines.append(scores("**all**", rows, judges))
    return table(headers, lines)


def scores(label: str, rows: list[Row], judges: list[tuple[str, Judge]]) -> list[str]:
    """A table row: the label, each filter's recall, then each filter's false positives."""
    return [label, *(share(j, rows, "refuse") for _, j in judges), *(share(j, rows, "allow") for _, j in judges)]


def timings(judge: Callable[[str, str], object], pairs: list[tuple[str, str]], repeats: int) -> tuple[float, float]:
    """p50 and p99 over the prompts of each prompt's median time, in microseconds."""
    medians = []
    gc.disable()
    try:
        for prompt, negative in pairs:
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                judge(prompt, negative)
                samples.append((time.perf_counter() - start) * 1e6)
            medians.append(statistics.median(samples))
    finally:
        gc.enable()
    medians.sort()
    return medians[len(medians) // 2], medians[min(len(medians) - 1, round(0.99 * (len(medians) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="times each prompt is judged for its median")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) here")
    args = parser.parse_args()

    start = time.perf_counter()
    new = PromptFilter.from_file()
    load_s = time.perf_counter() - start
    strict = new.with_terms(EXTRA_TERMS)
    judges: list[tuple[str, Judge]] = []
    strict_judges: list[tuple[str, Judge]] = []
    if (previous := previous_filters()) is not None:
        judges.append(("before", previous[0]))
        strict_judges.append(("before", previous[1]))
    judges.append(("now", lambda p, n: not new.judge(p, n).allowed))
    strict_judges.append(("now", lambda p, n: not strict.judge(p, n, suggestive=False).allowed))

    rows = corpus()
    categories = list(dict.fromkeys(row[1] for row in rows))
    languages = list(dict.fromkeys(row[2] for row in rows))
    refused_rows = [row for row in rows if row[0] == "refuse"]
    named = [new.judge(row[3], row[4]) for row in refused_rows]
    right_category = sum(v.category == row[1] for v, row in zip(named, refused_rows, strict=True))
    right_language = sum(v.language == row[2] for v, row in zip(named, refused_rows, strict=True))
    suggestive = [row for row in rows if row[1] == "suggestive"]
    strict_server = sum(not new.judge(row[3], row[4], suggestive=False).allowed for row in suggestive)

    shared = shared_corpus()
    disguises = [("refuse", "", "", p, n) for p, n in BLOCK_CASES] + [("allow", "", "", p, n) for p, n in ALLOW_CASES]
    other = [
        scores("shared corpus", shared, judges),
        scores("written while tuning (tests/moderation_tuning.tsv)", tuning_set(), judges),
        scores("disguises (tests/moderation_cases.py), strict server", disguises, strict_judges),
    ]
    names = [name for name, _ in judges]
    pairs = [(row[3], row[4]) for row in rows]
    timed = [[name, *(f"{t:.0f}" for t in timings(judge, pairs, args.repeats))] for name, judge in judges]
    long = ("a portrait of a smiling woman with curly hair in a sunny garden, soft light, " * 5)[:300]
    spelled = " ".join("abcdefghijklmnopqrstuvwxyz" * 6)[:300]
    worst = [
        [name, *(f"{timings(judge, [(text, '')], args.repeats)[0]:.0f}" for text in (long, spelled))]
        for name, judge in judges
    ]

    report = "\n".join(
        [
            "# Prompt filter benchmark",
            "",
            f"Machine: {machine()}. Corpus: tests/moderation_corpus.tsv, {len(rows)} prompts "
            f"({len(refused_rows)} to refuse, {len(rows) - len(refused_rows)} look-alikes that must pass), written "
            f"before the lexicons were tuned, judged with a server's default settings (suggestive words allowed). "
            f"Recall: refused share of the prompts to refuse (higher is better); false positives: refused share "
            f'of the prompts that must pass (lower is better). "before": the filter at commit {OLD_COMMIT} '
            '(English word lists), loaded from git in the same run; "now": the lexicons and rules of issue 24.',
            "",
            "## By category",
            "",
            'A look-alike\'s category is the one it resembles ("blood orange" is a violence look-alike).',
            "",
            breakdown("category", 1, categories, rows, judges),
            "",
            "## By language",
            "",
            breakdown("language", 2, languages, rows, judges),
            "",
            "## What moderators are told",
            "",
            f"Of the {len(refused_rows)} refusals, the category reported is the corpus's for {right_category} and "
            f"the language for {right_language}. The {len(suggestive)} suggestive prompts pass by default; a server "
            f"that refuses suggestive words refuses {strict_server} of them.",
            "",
            "## Other sets",
            "",
            table(["set", *(f"recall, {n}" for n in names), *(f"false positives, {n}" for n in names)], other),
            "",
            "## Time per prompt pair",
            "",
            f"One core; each of the {len(pairs)} corpus pairs judged {args.repeats} times, its median kept; µs. "
            f"Loading the lexicons once per process: {load_s * 1000:.0f} ms.",
            "",
            table(["filter", "p50 µs", "p99 µs"], timed),
            "",
            table(["filter", "300-character prompt, µs", "300 characters spelled out (a b c …), µs"], worst),
        ]
    )
    publish(report, args.out)


if __name__ == "__main__":
    main()
