"""The table of bench/gpu.py, rewritten after each section from whatever has been measured so far."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from common import machine, table

MISSING = "—"
TARGETS = (  # (what, value key path, limit, higher is better): issue 28's targets
    ("/face one member p50 ≤ 0.40 s (quality, detection included)", ("one", "graphs quality", "p50"), 0.40, False),
    ("/face one member p50 ≤ 0.25 s (fast profile)", ("one", "graphs fast", "p50"), 0.25, False),
    ("32-job burst ≥ 400 faces/min (quality)", ("burst", "graphs quality", "per_min"), 400.0, True),
    ("32-job burst ≥ 600 faces/min (fast profile)", ("burst", "graphs fast", "per_min"), 600.0, True),
    ("warm restart ≤ 20 s of warm-up", ("warm", "seconds"), 20.0, False),
    ("PRNet ≤ 1 ms at batch 1", ("prnet", "graphs"), 1.0, False),
)


def ms(value: float | None, digits: int = 1, unit: str = "ms") -> str:
    return MISSING if value is None else f"{value:.{digits}f} {unit}"


def count(value: float | None) -> str:
    return MISSING if value is None else f"{value:.0f}"


class Report:
    """Numbers by name (``numbers``), sections that did not run (``skipped``), fast-path parts that fell back
    (``fell_back``), and the Markdown they make."""

    def __init__(self, args: argparse.Namespace, card: str, *, out: Path) -> None:
        self.args = args
        self.card = card
        self.out = out
        self.numbers: dict[str, Any] = {}
        self.skipped: list[str] = []
        self.fell_back: list[str] = []  # fast-path parts that turned eager or numpy: their rows measure those

    def write(self, seconds: float) -> None:
        text = self.render(seconds)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(text + "\n", encoding="utf-8")
        print(text, flush=True)

    def get(self, *keys: Any) -> float | None:
        value: Any = self.numbers
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return None if value is None else float(value)

    def painting(self) -> list[list[str]]:
        get, rows = self.get, []
        for b in self.args.buckets:
            times = [get("paint", column, b) for column in ("eager", "graphs", "graphs fast")]
            rows.append([f"text-to-image, batch {b}: ms per batch", *map(ms, times), ""])
            rows.append(
                [
                    f"text-to-image, batch {b}: faces per minute",
                    *(count(b * 60000 / t if t else None) for t in times),
                    "",
                ]
            )
        for b in sorted({1, self.args.max_batch}):
            eager_fast, head = get("paint", "eager fast", b), get("paint", "graphs, decode eager", b)
            cl = get("paint", "graphs, channels-last", b)
            eager, compiled = get("decode", b, "eager"), get("decode", b, "compiled")
            rows += [
                [f"text-to-image, batch {b}, the fast profile eagerly", ms(eager_fast), MISSING, MISSING, ""],
                [
                    f"text-to-image, batch {b}, the decode not compiled (HEAD's fast path)",
                    MISSING,
                    ms(head),
                    MISSING,
                    "",
                ],
                [
                    f"text-to-image, batch {b}, UNet and VAE channels-last (`--channels-last`)",
                    MISSING,
                    ms(cl),
                    MISSING,
                    "",
                ],
                [f"VAE decode to bytes alone, batch {b}: eager -> compiled", ms(eager), ms(compiled), MISSING, ""],
            ]
        other = "NCHW" if self.args.cuda else "channels-last"
        rows.append(
            [
                "PRNet.predict (numpy in and out), batch 1",
                ms(self.get("prnet", "eager"), 2),
                ms(get("prnet", "graphs"), 2),
                MISSING,
                "≤ 1 ms",
            ]
        )
        rows.append(
            [
                f"PRNet.predict, batch 1, graph in {other} instead",
                MISSING,
                ms(get("prnet", "graphs, other layout"), 2),
                MISSING,
                "",
            ]
        )
        for size in (512, 1024):
            rows.append(
                [
                    f"MTCNN, one {size} px face photo, on {self.args.device}",
                    MISSING,
                    ms(get("mtcnn", size)),
                    MISSING,
                    "",
                ]
            )
        return rows

    def serving(self) -> list[list[str]]:
        get, rows, burst = self.get, [], self.args.burst
        columns = ("eager quality", "graphs quality", "graphs fast")
        for stat, name, target in [("p50", "p50", "≤ 0.40 s / ≤ 0.25 s fast"), ("p95", "p95", "")]:
            cells = [ms(get("one", c, stat), 2, "s") for c in columns]
            rows.append([f"/face one member at a time, submit -> files {name}", *cells, target])
        spread = []
        for c in columns:
            median, low = get("burst", c, "per_min"), self.numbers.get("burst", {}).get(c, {}).get("per_min_range")
            samples = len(self.numbers.get("burst", {}).get(c, {}).get("samples", []))
            said = count(median)
            if median is not None and low is not None and samples > 1:
                said += f" ({low[0]:.0f}–{low[1]:.0f}, {samples} samples)"
            spread.append(said)
        rows.append(
            [f"{burst}-job burst like members', faces per minute: median (spread)", *spread, "≥ 400 / ≥ 600 fast"]
        )
        rows.append(
            [
                f"{burst}-job burst, latency p50 (median of samples)",
                *(ms(get("burst", c, "p50"), 2, "s") for c in columns),
                "",
            ]
        )
        rows.append(
            [
                f"{burst}-job burst, paints per job (repaints included)",
                *(f"{v:.2f}" if (v := get("burst", c, "paints")) else MISSING for c in columns),
                "",
            ]
        )
        files = self.numbers.get("files", {})
        threads = files.get("threads", "n")
        rows.append(
            [
                f"one face's files: 1 thread -> {threads} helpers (CPU)",
                ms(get("files", "one")),
                ms(get("files", "helpers")),
                MISSING,
                "",
            ]
        )
        rows.append(
            [
                f"one face's files, {threads} helpers, preview and turntable drawn on {self.args.device}",
                MISSING,
                ms(get("files", "drawn")),
                MISSING,
                "",
            ]
        )
        return rows

    def start_up(self) -> list[list[str]]:
        cold, warm, after = self.numbers.get("cold"), self.numbers.get("warm"), self.numbers.get("after")
        rows = [
            [
                "start-up warm-up, cold (empty compile cache)",
                MISSING,
                MISSING if cold is None else f"{cold['seconds']:.1f} s ({cold['misses']} graphs compiled)",
                "",
                "",
            ],
            [
                "warm restart: the warm-up (compile cache filled by this run)",
                MISSING,
                MISSING
                if warm is None
                else f"{warm['seconds']:.1f} s ({warm['hits']} graphs loaded, {warm['misses']} compiled)",
                "",
                "≤ 20 s",
            ],
            [
                "warm restart: the whole process, start -> ready (imports, models from disk, warm-up)",
                MISSING,
                MISSING
                if warm is None
                else f"{warm['ready_s']:.1f} s (imports {warm['imports_s']:.1f}, models {warm['load_s']:.1f})",
                "",
                "",
            ],
        ]
        for label, numbers, key in [
            (
                "CUDA graphs skipped (`cudagraph_skips`): cold warm-up / restart / serving after",
                (cold, warm, after),
                "skips",
            ),
            ("frames compiled after the warm-up (a recompile; should be 0)", (after,), "frames"),
            ("graph breaks: cold warm-up / serving after", (cold, after), "breaks"),
        ]:
            said = " / ".join(MISSING if n is None or key not in n else str(n[key]) for n in numbers)
            rows.append([label, "", said, "", "0"])
        return rows

    def images(self) -> list[list[str]]:
        return [[name, f"{value:.2f}"] for name, value in self.numbers.get("diffs", {}).items()]

    def checks(self) -> str:
        said = []
        for name, keys, limit, higher in TARGETS:
            value = self.get(*keys)
            verdict = (
                "not measured"
                if value is None
                else "met"
                if (value >= limit if higher else value <= limit)
                else "NOT met"
            )
            said.append(f"{name}: {verdict}")
        return "Targets: " + "; ".join(said) + "."

    def render(self, seconds: float) -> str:
        args, numbers = self.args, self.numbers
        model = "tiny random SD (test fixture)" if args.smoke else "SD v1-4 architecture, random weights"
        versions = ", ".join(f"{k} {v}" for k, v in numbers.get("versions", {}).items())
        every, branch = args.deepcache_interval, args.deepcache_branch
        fast = f"{args.fast_steps} steps, Karras sigmas, DeepCache every {every} steps at branch {branch}"
        lines = [
            f"# GPU fast path and fast profile ({'CPU smoke test, NOT a GPU result' if args.smoke else self.card})",
            f"Machine: {machine()}. Versions: {versions or MISSING}. Model: {model} with its safety checker, saved "
            f"once and loaded by `t2f.build` ({numbers.get('made_s', 0):.0f} s to make and save), {args.size} px, "
            f"DPM-Solver++ {args.steps} steps, {str(args.dtype)[6:]}, buckets {', '.join(map(str, args.buckets))}. "
            f"Eager = `T2F_COMPILE=off`; graphs = `T2F_COMPILE={args.mode}` with `T2F_COMPILE_VAE=on`; the fast "
            f"profile = {fast}. All measured in this run, every model call on the service's GPU thread; p50 of "
            f"{args.runs} runs (batch 1) or {max(2, args.runs - 2)}. Service rows: the bot's route (safety checker, "
            f"face gate, PRNet's network at full cost answering with a real face's map, the bot's files); "
            + (
                "PyTorch MTCNN on a face photo of the painted size"
                if args.torch_mtcnn
                else f"a {args.detect_s * 1000:.0f} ms detection stand-in"
            )
            + f"; one image in {args.repaint_every} finds no face and is repainted. Run so far: {seconds:.0f} s.",
            table(["painting", "eager", "graphs", "graphs, fast profile", "target"], self.painting()),
            table(["serving", "eager", "graphs, quality", "graphs, fast profile", "target"], self.serving()),
            table(["start-up and checks", "eager", "graphs", "", "should be"], self.start_up()),
            table([f"pictures of the same {args.diff_seeds} seeds", "mean absolute difference (0-255)"], self.images()),
            "Random weights paint noise: these differences say how far a change moves the same computation, not what "
            "it does to a face (that needs the real weights).",
        ]
        lines.append(
            self.checks() if args.cuda else "No CUDA: everything ran eagerly; the targets apply to a GPU run only."
        )
        for label, key in [
            ("graphs, quality", "graphs quality"),
            ("graphs, fast profile", "graphs fast"),
            ("eager", "eager quality"),
        ]:
            stages = numbers.get("one", {}).get(key, {}).get("stages")
            if stages:
                said = ", ".join(f"{name} {s * 1000:.0f}" for name, s in stages.items())
                lines.append(
                    f"Where one member's time went ({label}; median ms per stage, from the job reports): {said}."
                )
        for label, key in [("cold", "cold"), ("restart", "warm"), ("channels-last, cold", "cl_cold")]:
            said = numbers.get(key, {}).get("line")
            if said:
                lines.append(f"The warm-up's log line ({label}): `{said}`.")
        if numbers.get("section_s"):
            lines.append(
                "Seconds per section: " + ", ".join(f"{k} {v:.0f}" for k, v in numbers["section_s"].items()) + "."
            )
        if self.fell_back:
            lines.append(
                "**Fell back** (see the log; these rows did not measure the fast path): "
                + "; ".join(self.fell_back)
                + "."
            )
        if self.skipped:
            lines.append("Not measured: " + "; ".join(self.skipped) + ".")
        return "\n\n".join(lines)
