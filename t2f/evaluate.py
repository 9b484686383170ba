"""``t2f eval-faces``: how often the painter gives a usable face, first time and after repaints.

Paints each prompt ``runs`` times with the configured framing, judges every image with the face gate
(the detector's boxes and keypoints; no PRNet), repaints with the next seed as the bot would, and
reports the share that passed first time and after repaints, why images failed, and what repaints
cost in time. Meaningful with real weights; with the tiny test model it runs as a smoke test.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from t2f.faces import FaceBox, FaceRequest
from t2f.stages.gate import GateLimits, GateReason, PortraitFraming, judge


@dataclass(frozen=True)
class Trial:
    """One prompt painted until it passed or ran out of repaints.

    ``reasons`` holds why each failed image failed, in order; ``seconds`` are paint + judge per image.
    """

    prompt: str
    first_seed: int
    passed: bool
    reasons: tuple[GateReason, ...] = ()
    seconds: tuple[float, ...] = field(default_factory=tuple)

    @property
    def tries(self) -> int:
        return len(self.seconds)


def read_prompts(lines: Iterable[str]) -> list[str]:
    """Prompts, one per line; blank lines and ``#`` comments skipped."""
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def evaluate(
    prompts: list[str],
    *,
    paint: Callable[[FaceRequest], np.ndarray | None],
    detect: Callable[[np.ndarray], list[FaceBox]],
    framing: PortraitFraming,
    limits: GateLimits,
    runs: int,
    max_repaints: int,
    request: FaceRequest,
) -> list[Trial]:
    """Each prompt ``runs`` times (seeds 0, 100, 200, ...; repaints take the next seeds).

    ``paint`` returns the image, or ``None`` when the safety checker withheld it; ``request`` gives
    steps, guidance and size.
    """
    trials = []
    for prompt in prompts:
        for run in range(runs):
            first = run * 100
            reasons: list[GateReason] = []
            seconds: list[float] = []
            passed = False
            for attempt in range(max_repaints + 1):
                started = time.perf_counter()
                face = replace(request, prompt=prompt, seed=first + attempt)
                image = paint(framing.frame(face))
                reason = GateReason.FLAGGED if image is None else judge(image.shape, detect(image), limits).reason
                seconds.append(time.perf_counter() - started)
                if reason is None:
                    passed = True
                    break
                reasons.append(reason)
            trials.append(Trial(prompt, first, passed, tuple(reasons), tuple(seconds)))
    return trials


def yield_report(trials: list[Trial], *, context: str) -> str:
    """A Markdown report: pass rates, failure reasons and the time repaints cost."""
    if not trials:
        return "# Face yield\n\nNo prompts."
    total = len(trials)
    first = sum(t.passed and t.tries == 1 for t in trials)
    overall = sum(t.passed for t in trials)
    reasons = Counter(reason for t in trials for reason in t.reasons)
    one_paint = float(np.mean([t.seconds[0] for t in trials]))
    per_face = float(np.mean([sum(t.seconds) for t in trials]))
    max_tries = max(t.tries for t in trials)
    rows = [
        "| measure | value |",
        "| --- | --- |",
        f"| trials (prompts x runs) | {total} |",
        f"| usable first time | {first}/{total} ({100 * first / total:.0f} %) |",
        f"| usable after repaints (up to {max_tries} images) | {overall}/{total} ({100 * overall / total:.0f} %) |",
        f"| images painted | {sum(t.tries for t in trials)} |",
        f"| mean seconds, first image | {one_paint:.2f} |",
        f"| mean seconds per trial, repaints included | {per_face:.2f} ({per_face / one_paint:.2f}x the first) |",
    ]
    reason_rows = ["| why an image failed | images |", "| --- | --- |"]
    reason_rows += [f"| {reason} | {count} |" for reason, count in reasons.most_common()] or ["| (none) | 0 |"]
    return "\n\n".join(["# Face yield", context, "\n".join(rows), "\n".join(reason_rows)])


def painter(stage: Any) -> Callable[[FaceRequest], np.ndarray | None]:
    """A ``paint`` for :func:`evaluate` from a text-to-image stage."""

    def paint(request: FaceRequest) -> np.ndarray | None:
        result: np.ndarray | None = stage.generate(request).image
        return result

    return paint
