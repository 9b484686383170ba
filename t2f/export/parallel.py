"""Run one face's independent export parts on a thread pool, the calling thread helping.

numpy, zlib and Pillow release the GIL in their inner loops, so a face's files (OBJ text, PNG, GLB,
preview, turntable frames) made on several threads take well under the sum of their times: one face
740 -> 287 ms with 4 helpers on the H200 host, 1.48x with 2 on the 2-core dev VM (bench/gpu.py's files
row; bench/results/gpu-nvidia-h200.md). That matters for one member waiting alone on a fast GPU, where
the files were the larger half of submit -> files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, wait
from typing import TypeVar

T = TypeVar("T")


def run_parts(parts: Sequence[Callable[[], T]], pool: Executor | None = None) -> list[T]:
    """Each part's result, in order; the parts run on ``pool`` (all on this thread when it is ``None``).

    The calling thread runs the first part itself and then every part the pool has not started
    (cancelling it there), so a call made from one of ``pool``'s own threads cannot deadlock
    waiting for a thread that is waiting too, and no thread idles while work is queued. A part's
    exception is raised here once the parts still running have finished and the others are dropped
    unstarted, so nothing of a failed face goes on using the pool.
    """
    if pool is None or len(parts) < 2:
        return [part() for part in parts]
    futures = [pool.submit(part) for part in parts[1:]]
    try:
        results = [parts[0]()]
        for part, future in zip(parts[1:], futures, strict=True):
            results.append(part() if future.cancel() else future.result())
        return results
    finally:  # after a failure: drop what has not started, wait for what has
        for future in futures:
            future.cancel()
        # not the cancelled ones: they count as done only once a pool thread has dequeued them
        wait([future for future in futures if not future.cancelled()])
