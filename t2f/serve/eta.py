"""How long batches take, by size: the moving averages behind the queue's ETA."""

from __future__ import annotations

from collections.abc import Mapping


class BatchTimes:
    """Seconds per batch: one moving average per batch size and one over all batches.

    Seeds (the warm-up's estimates, or its whole time) stand until real batches replace them: the
    first real batch of a size replaces its seed, later ones are averaged in (weight 0.3).
    """

    def __init__(self, initial_s: float = 10.0) -> None:
        self.overall = initial_s  # the initial guess until a warm-up or a batch measures one
        self.by_size: dict[int, float] = {}
        self._seeded: set[int] = set()  # sizes whose time is still a warm-up seed

    def estimate(self, size: int) -> float:
        """Seconds a batch of ``size`` jobs takes: its own average, else that of the next larger size
        measured (a compiled backend pads a batch up to its bucket, so it costs the same), else the overall."""
        if size in self.by_size:
            return self.by_size[size]
        larger = [known for known in self.by_size if known > size]
        return self.by_size[min(larger)] if larger else self.overall

    def record(self, size: int, seconds: float) -> None:
        """Fold a finished batch's time into the averages."""
        self.overall = 0.7 * self.overall + 0.3 * seconds
        known = self.by_size.get(size)
        self.by_size[size] = seconds if known is None or size in self._seeded else 0.7 * known + 0.3 * seconds
        self._seeded.discard(size)

    def seed(self, timings: object, seconds: float) -> None:
        """Seed from a warm-up: its batch size -> seconds map when it returned one, else its whole ``seconds``."""
        if isinstance(timings, Mapping) and timings:
            self.by_size.update({int(size): float(took) for size, took in timings.items()})
            self._seeded.update(self.by_size)
            self.overall = self.by_size[max(self.by_size)]
        else:
            self.overall = seconds
