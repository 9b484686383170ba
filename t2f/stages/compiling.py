"""The GPU fast path's shared pieces: compile modes, batch buckets and the on-disk compile cache.

``T2F_COMPILE`` has three modes: ``off`` (eager), ``default`` (``torch.compile``'s default mode) and
``graphs`` (mode ``"reduce-overhead"``: inductor code replayed from CUDA graphs, CUDA only), and
``graphs-single``: ``graphs`` plus a fully static UNet graph for a face painted alone. Compiled
models see only a fixed set of batch sizes, the *buckets* (1, 2, 4, 8 ... up to ``T2F_MAX_BATCH``): a
batch is padded up to its bucket, so every shape is compiled (or captured) once in the start-up warm-up
and never in a member's request.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# T2F_COMPILE -> torch.compile's mode (None: eager).
TORCH_MODES: dict[str, str | None] = {
    "off": None,
    "default": "default",
    "graphs": "reduce-overhead",
    "graphs-single": "reduce-overhead",
}


def replays_graphs(mode: str) -> bool:
    """Whether a ``T2F_COMPILE`` mode replays CUDA graphs (``graphs``, ``graphs-single``)."""
    return mode.startswith("graphs")


def parse_compile_mode(value: bool | str) -> str:
    """A ``T2F_COMPILE`` mode from a mode name or the old switch (True is ``default``).

    Raises
    ------
    ValueError
        For a name that is not a mode.
    """
    if isinstance(value, bool):
        return "default" if value else "off"
    if value not in TORCH_MODES:
        raise ValueError(f"unknown compile mode {value!r}; allowed: {', '.join(TORCH_MODES)}")
    return value


def buckets_for(max_batch: int) -> tuple[int, ...]:
    """The batch sizes compiled models see: powers of two below ``max_batch``, then ``max_batch`` itself.

    At most 6 + 1 sizes for ``max_batch`` <= 32, so with and without guidance (a UNet batch of ``2b``
    or ``b``) the UNet meets at most 8 shapes: dynamo's default recompile limit.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    powers = [1 << k for k in range(max_batch.bit_length()) if 1 << k < max_batch]
    return (*powers, max_batch)


def bucket_for(count: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket holding ``count`` items; the largest bucket when none does (the caller splits)."""
    return next((b for b in buckets if b >= count), buckets[-1])


@dataclass(frozen=True)
class CompileCache:
    """Where compiled code is kept between starts, and what was there when this process started.

    Attributes
    ----------
    folder : the cache folder (``TORCHINDUCTOR_CACHE_DIR``; Triton's kernels go under it too).
    files_before : how many files it held before this start (0: a cold start, everything compiles).
    """

    folder: Path
    files_before: int

    @property
    def warm(self) -> bool:
        return self.files_before > 0


def use_compile_cache(folder: Path) -> CompileCache:
    """Point inductor's on-disk caches at ``folder`` and turn the FX graph cache on, before anything compiles.

    Inductor reads ``TORCHINDUCTOR_CACHE_DIR`` from the environment when it first needs the folder, so the
    variable is the way to move it; this is the one place t2f sets it. A restart with the same folder
    loads compiled graphs and kernels instead of compiling them (48 s -> 10.6 s for one shape on an H200).
    """
    import torch._inductor.config as inductor_config
    from torch._inductor.utils import clear_caches

    folder = folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    files_before = sum(1 for path in folder.rglob("*") if path.is_file())
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    inductor_config.fx_graph_cache = True
    clear_caches()  # inductor memoises the folder's path: forget an earlier one
    return CompileCache(folder=folder, files_before=files_before)


def cache_counters() -> tuple[int, int]:
    """FX graph cache (hits, misses) in this process so far, from dynamo's counters."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["fxgraph_cache_hit"]), int(counters["inductor"]["fxgraph_cache_miss"])


def is_compile_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from dynamo or inductor (compiling), not from the model's own work."""
    from torch._dynamo.exc import TorchDynamoException

    names = {cls.__name__ for cls in type(exc).__mro__}
    return isinstance(exc, TorchDynamoException) or bool(names & {"InductorError", "BackendCompilerFailed"})
