"""The table of bench/gpu.py, rewritten after each section from whatever has been measured so far."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from common import machine, table

MISSING = "—"


def ms(value: float | None, digits: int = 1, unit: str = "ms") -> str:
    return MISSING if value is None else f"{value:.{digits}f} {unit}"


def ratio(before: float | None, after: float | None) -> str:
    return "" if before is None or after is None or after == 0 else f"{before / after:.2f}x"


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

    def _get(self, *keys: Any) -> float | None:
        value: Any = self.numbers
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return None if value is None else float(value)

    def rows(self) -> list[list[str]]:
        args, get = self.args, self._get
        rows: list[list[str]] = []
        for b in args.buckets:
            eager, fast = get("eager_paint", b), get("fast_paint", b)
            rows.append([f"text-to-image, batch {b}: ms per batch", ms(eager), ms(fast), ratio(eager, fast)])
            per_min = [MISSING if v is None else f"{b * 60000 / v:.0f}" for v in (eager, fast)]
            rows.append([f"text-to-image, batch {b}: faces per minute", *per_min, ratio(eager, fast)])
        layout, other = ("channels-last", "NCHW") if args.cuda else ("NCHW", "channels-last")
        for b in args.buckets:
            eager, fast = get("eager_prnet", b), get("fast_prnet", b)
            rows.append(
                [
                    f"PRNet.predict (numpy in and out), batch {b}: ms per call",
                    ms(eager, 2),
                    f"{ms(fast, 2)} ({layout})",
                    ratio(eager, fast),
                ]
            )
        for b in args.buckets:
            eager, fast = get("eager_prnet", b), get("fast_prnet_other", b)
            rows.append(
                [
                    f"PRNet.predict, batch {b}, fast path in {other} instead",
                    ms(eager, 2),
                    ms(fast, 2),
                    ratio(eager, fast),
                ]
            )
        stand_in = f"{args.detect_s * 1000:.0f} ms stand-in"
        detected = (
            f"detection: {stand_in} on the GPU thread -> PyTorch MTCNN on {args.device}, own thread"
            if args.torch_mtcnn
            else f"detection ({stand_in}) on the GPU thread -> own thread"
        )
        for label, key in [
            ("whole-image crop", ("eager_service", "fast_service")),
            (detected, ("detect_serial", "detect_overlap")),
        ]:
            before, after = key
            for name, stat, unit in [
                ("one member at a time: submit -> files p50", "p50", "s"),
                ("one member at a time: p95", "p95", "s"),
            ]:
                b, a = get(before, "one", stat), get(after, "one", stat)
                rows.append([f"service, {label}: {name}", ms(b, 2, unit), ms(a, 2, unit), ratio(b, a)])
            b, a = get(before, "burst", "per_min"), get(after, "burst", "per_min")
            counts = [MISSING if v is None else f"{v:.0f}" for v in (b, a)]
            rows.append([f"service, {label}: {args.burst}-job burst, faces per minute", *counts, ratio(a, b)])
            b, a = get(before, "burst", "p50"), get(after, "burst", "p50")
            rows.append(
                [f"service, {label}: {args.burst}-job burst, latency p50", ms(b, 2, "s"), ms(a, 2, "s"), ratio(b, a)]
            )
        for size in (512, 1024):
            now = get("mtcnn", size)
            if now is not None:
                before = args.detect_s * 1000 if size == 512 else None
                rows.append(
                    [
                        f"MTCNN, one {size} px face photo: TensorFlow on the CPU ({stand_in}) -> PyTorch on "
                        f"{args.device}",
                        ms(before),
                        ms(now),
                        ratio(before, now),
                    ]
                )
        one, many, drawn = get("files", 1), get("files", args.file_threads), get("files", "drawn")
        rows.append(
            [
                f"one face's files (PNG, 3 meshes, preview, turntable; CPU): 1 thread -> {args.file_threads} helpers",
                ms(one),
                ms(many),
                ratio(one, many),
            ]
        )
        rows.append(
            [
                f"one face's files: 1 thread -> {args.file_threads} helpers, preview and turntable drawn by "
                f"PyTorch on {args.device}",
                ms(one),
                ms(drawn),
                ratio(one, drawn),
            ]
        )
        cold = self.numbers.get("cold")
        rows.append(
            [
                "start-up warm-up, cold (empty compile cache)",
                MISSING,
                MISSING if cold is None else f"{cold['seconds']:.1f} s ({cold['misses']} graphs compiled)",
                "",
            ]
        )
        warm = self.numbers.get("warm")
        rows.append(
            [
                "start-up warm-up, restart with the cache",
                MISSING,
                MISSING
                if warm is None
                else (
                    f"{warm['seconds']:.1f} s ({warm['hits']} loaded, {warm['misses']} compiled; "
                    f"{warm['files_before']} files); whole process incl. building the random model "
                    f"{warm['process_s']:.0f} s"
                ),
                ratio(cold["seconds"] if cold else None, warm["seconds"] if warm else None),
            ]
        )
        recompiles = self.numbers.get("recompiles")
        rows.append(
            [
                "graphs compiled after the warm-up (painting and serving; should be 0)",
                "",
                MISSING if recompiles is None else str(recompiles),
                "",
            ]
        )
        diff = get("image_diff")
        rows.append(
            [
                "same seed, eager vs fast image: mean absolute difference (0-255)",
                "",
                MISSING if diff is None else f"{diff:.2f}",
                "",
            ]
        )
        return rows

    def checks(self) -> str:
        get = self._get
        targets = [
            ("text-to-image batch 1 <= 250 ms", get("fast_paint", 1), 250.0, False),
            ("/face one member p50 <= 0.4 s (detection included)", get("detect_overlap", "one", "p50"), 0.4, False),
            (
                f"{self.args.burst}-job burst >= 400 faces/min (detection included)",
                get("detect_overlap", "burst", "per_min"),
                400.0,
                True,
            ),
            ("PRNet batch 1 <= 1.5 ms", get("fast_prnet", 1), 1.5, False),
            ("warm restart <= 20 s", get("warm", "seconds"), 20.0, False),
        ]
        said = [
            f"{name}: {'not measured' if v is None else 'met' if (v >= t if up else v <= t) else 'NOT met'}"
            for name, v, t, up in targets
        ]
        return "Targets: " + "; ".join(said) + "."

    def render(self, seconds: float) -> str:
        args = self.args
        model = "tiny random SD (test fixture)" if args.smoke else "SD v1-4 architecture, random weights"
        fast = args.mode if args.cuda else "eager + buckets (no CUDA)"
        lines = [
            f"# GPU fast path benchmark ({'CPU smoke test, NOT a GPU result' if args.smoke else self.card})",
            f"Machine: {machine()}. Model: {model}, {args.size} px, DPM-Solver++ {args.steps} steps, guidance 7.5, "
            f"{str(args.dtype)[6:]}; buckets {', '.join(map(str, args.buckets))}; T2F_MAX_BATCH {args.max_batch}. "
            f"Eager = before the fast path (eager UNet and PRNet, detection on the GPU thread, 1 thread writing "
            f"files); fast = {fast}, detection on its own thread, {args.export_threads} export threads"
            + (", the preview and turntable drawn on the GPU" if args.cuda else "")
            + ". Both "
            f"measured in this run, every model call on the service's worker thread; p50 of {args.runs} runs "
            f"(batch 1) or {max(2, args.runs - 2)}. Service: PRNet's network at full cost answering with a real "
            f"face's map; the files are the bot's (PNG, OBJ, preview strip, turntable GIF). Stand-in detection "
            f"waits {args.detect_s * 1000:.0f} ms per image (TensorFlow MTCNN's CPU time on the H200 host; "
            f"TensorFlow is not on the GPU host) and takes the middle of the image"
            + (
                f"; PyTorch MTCNN runs the real cascade on {args.device} on a face photo of the painted size, then "
                "takes the middle of the image (random weights paint no face)"
                if args.torch_mtcnn
                else ""
            )
            + f". Run so far: {seconds:.0f} s.",
            table(["measurement", "eager", f"fast path ({fast})", "speed-up"], self.rows()),
        ]
        if args.cuda:
            lines.append(self.checks())
        else:
            lines.append(
                "No CUDA: the fast path ran eagerly (padding to buckets, the warm-up over every bucket); "
                "the issue's targets apply to a GPU run only."
            )
        for label, key in [
            ("eager", "eager_service"),
            ("fast, whole-image crop", "fast_service"),
            ("fast, detection on its own thread", "detect_overlap"),
        ]:
            stages = self.numbers.get(key, {}).get("one", {}).get("stages")
            if stages:
                said = ", ".join(f"{name} {seconds * 1000:.0f}" for name, seconds in stages.items())
                lines.append(
                    f"Where one member's time went ({label}; median ms per stage, from the job reports; "
                    f"parts made on several threads add up their own times): {said}."
                )
        for label, key in [("cold", "cold"), ("restart with the cache", "warm")]:
            said = self.numbers.get(key, {}).get("line")
            if said:  # the parts: each batch size's first run (compile, load, capture), the ETA's timing runs
                lines.append(f"The warm-up's log line ({label}): `{said}`.")
        if self.fell_back:
            lines.append(
                "**Fell back** (see the log; these rows did not measure the fast path): "
                + "; ".join(self.fell_back)
                + "."
            )
        if self.skipped:
            lines.append("Not measured: " + "; ".join(self.skipped) + ".")
        return "\n\n".join(lines)
