"""The start-up warm-up: the route's own stages run once for every shape the models will meet, before any job.

Runs on the service's GPU thread (``JobService.warm_up``): CUDA graphs recorded by ``torch.compile``'s
"reduce-overhead" mode belong to the thread that recorded them, so warming up anywhere else would leave
the first member of each batch size to record them again. The painter paints, the faces stage runs the
detector and PRNet, and the files stage draws a face, as they will for members.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from t2f.errors import first_line
from t2f.faces import FaceRequest, FaceResult
from t2f.serve.jobs import FaceJob, JobRequest, Outcome

if TYPE_CHECKING:
    from t2f.serve.faces import FaceFinder
    from t2f.serve.files import FileWriter
    from t2f.serve.paint import Painter
    from t2f.serve.route import Route
    from t2f.stages.gate import GateLimits, PortraitFraming
    from t2f.stages.pipeline import FacePipeline

log = logging.getLogger(__name__)


def _cache_counters() -> tuple[int, int]:
    """Compile-cache (hits, misses) so far, imported late: this module loads without torch."""
    from t2f.stages.compiling import cache_counters

    return cache_counters()


@dataclass(frozen=True)
class LocalStages:
    """The route's stages on this machine, as the warm-up needs them (their concrete types)."""

    painter: Painter
    faces: FaceFinder
    files: FileWriter

    @classmethod
    def around(
        cls,
        pipeline: FacePipeline,
        *,
        crop: str = "detect",
        gate: GateLimits | None = None,
        framing: PortraitFraming | None = None,
        parts_threads: int = 1,
        render_device: str | None = None,
    ) -> LocalStages:
        """The three stages around ``pipeline`` (its ``text_to_image`` is the painter's stage)."""
        # Imported here: this module loads without the stages (and torch) behind them.
        from t2f.serve.faces import FaceFinder
        from t2f.serve.files import FileWriter
        from t2f.serve.paint import Painter

        return cls(
            painter=Painter(pipeline.text_to_image, framing=framing),
            faces=FaceFinder(pipeline, crop=crop, gate=gate),
            files=FileWriter(parts_threads=parts_threads, render_device=render_device),
        )

    def route(self, *, faces_thread: bool = False, files_threads: int = 1) -> Route:
        """The route through these stages: faces on a thread of their own or not, files on ``files_threads``."""
        from t2f.serve.route import Route

        return Route(
            paint=self.painter,
            faces=self.faces,
            files=self.files,
            faces_thread=faces_thread,
            files_threads=files_threads,
        )


class Unwatched:
    """A :class:`~t2f.serve.route.Watch` for the warm-up's jobs: nobody follows them."""

    def report(self, progress: object) -> None:
        pass

    def cancelled(self, job_id: str) -> bool:
        return False

    def previews_due(self, job_ids: object) -> bool:
        return False

    def hand_on(self, outcome: Outcome) -> None:
        pass


def warm_up(stages: LocalStages, size: int, *, max_batch: int, compile_mode: str, steps: int = 2) -> dict[int, float]:
    """Short generations and reconstructions, so no member's job pays start-up costs.

    With a compiled painter (``T2F_COMPILE``) every batch bucket runs once with classifier-free guidance,
    so each shape the UNet and PRNet can meet is compiled, or captured into CUDA graphs, here and never
    in a job (unguided batches run the eager UNet); then each bucket is timed painting 2 and 4 steps, and
    its time for ``steps`` (the members' default) extrapolated: painting grows by the step, PRNet and
    the mesh do not. Those times are kept beside the compiled code (:data:`TIMES_FILE`), and a restart
    whose compile cache is warm, for the same model, card, shapes and steps, takes them from there
    instead of timing again (the service's moving averages correct them as batches finish): a few
    seconds of every restart. A ``compile_mode`` other than ``off`` asks for the same on a stage without
    buckets (one face, then ``max_batch`` faces). A compile or capture error turns both models eager with
    one warning line and the warm-up goes on eagerly: it never stops the bot. Where the fast profile runs a
    UNet graph of its own (DeepCache's shallow twin), each bucket also paints a fast batch once.

    Returns
    -------
    seconds : batch size -> estimated seconds of a ``steps``-step batch (a 2-step batch's seconds when
        nothing compiled: the eager CPU path pays for no extra timing runs), to seed the service's ETA.
    """
    stage, prnet = stages.painter.text_to_image, stages.faces.pipeline.prnet
    buckets = tuple(getattr(stage, "buckets", ()))
    compiled = compile_mode != "off"
    fast = bool(buckets) or compiled or getattr(stage, "compiled", False) or prnet.compiled
    sizes = buckets or ((1, max_batch) if compiled and max_batch > 1 else (1,))
    started = time.perf_counter()
    hits_misses = _cache_counters() if fast else (0, 0)
    phases = WarmUpPhases()  # where the time went, for the log line: what a slow restart should attack
    try:
        seconds: dict[int, float] = {}
        profiles = getattr(getattr(stage, "profiles", None), "warm_profiles", ("quality",))
        for count in sizes:  # guided: unguided batches run the eager UNet (TextToImage._paint)
            with phases.timed(f"batch {count}"):
                seconds.setdefault(count, sum(_warm_run(stages, count, size)))
            if fast and "fast" in profiles:
                with phases.timed(f"batch {count} fast"):
                    _warm_paint(stages, count, size, steps=2, profile="fast")
        if fast:  # the runs above compiled: time each size again at two step counts, or as last time
            key = _times_key(stages, sizes, size, steps)
            remembered = _remembered_times(stage, key)
            with phases.timed("batch times" if remembered is None else "batch times kept from the last start"):
                seconds = remembered or {count: _estimate(stages, count, size, steps) for count in sizes}
            if remembered is None:
                _remember_times(stage, key, seconds)
    except Exception as exc:
        if not fast:
            raise
        log.warning("compiling or capturing failed (%s); both models run eagerly", first_line(exc))
        if hasattr(stage, "use_eager"):
            stage.use_eager()
        prnet.use_eager()
        with phases.timed("eager batch 1"):
            seconds = {1: sum(_warm_run(stages, 1, size))}
    if stages.files.renderer is not None:  # the first draw on the GPU loads its kernels: not in a member's job
        with phases.timed("drawing"):
            _warm_render(stages, size)
    took = time.perf_counter() - started
    log.info("warm-up took %.1f s%s; %s", took, _warm_note(stage, sizes, hits_misses), phases.said(took))
    return seconds


class WarmUpPhases:
    """Seconds of each part of the warm-up, in order: the first guided run of each batch size (where
    compiling, loading compiled code from the cache and capturing CUDA graphs happen), the timing runs
    for the ETA, the first drawing."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - started

    def said(self, total: float) -> str:
        """``"batch 1 11.2 s, batch 2 2.1 s, ..., other 0.3 s"``: the parts and what no part covers."""
        parts = [f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items()]
        return ", ".join([*parts, f"other {max(0.0, total - sum(self.seconds.values())):.1f} s"])


def _warm_render(stages: LocalStages, size: int) -> None:
    """Draw one face's preview and turntable through the files stage (a mesh of a blank image). A failure
    only logs: the renderer falls back to numpy by itself, and nothing here may stop the bot."""
    try:
        image = np.zeros((size, size, 3), np.uint8)
        (face,) = stages.faces.pipeline.reconstruct_many([image], crop="whole")
        if isinstance(face, FaceResult):
            request = JobRequest(job_id="warm-up", user_id=0, face=FaceRequest("warm-up", size=size))
            stages.files.write(FaceJob(request=request, face=face))
    except Exception as exc:
        log.warning("warming up the drawing failed (%s)", first_line(exc))


TIMES_FILE = "t2f-batch-times.json"  # in the compile cache folder


def _times_key(stages: LocalStages, sizes: tuple[int, ...], size: int, steps: int) -> dict[str, object]:
    """What the batch times depend on: the model, the card and software, the shapes, the steps, the crop."""
    import torch

    stage = stages.painter.text_to_image
    device = str(getattr(stage, "device", "cpu"))
    card = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else device
    return {
        "model": getattr(stage, "model", ""),
        "revision": getattr(stage, "revision", None),
        "card": card,
        "torch": torch.__version__,
        "dtype": str(getattr(stage, "dtype", "")),
        "sizes": list(sizes),
        "image_size": size,
        "steps": steps,
        "crop": stages.faces.crop,
        "render": stages.files.render_device,
        "detector": getattr(stages.faces.pipeline.detector, "engine", None),
        "single": getattr(stage, "single_unet", None) is not None,
    }


def _remembered_times(stage: object, key: dict[str, object]) -> dict[int, float] | None:
    """The batch times a start with this ``key`` measured, when the compile cache was warm; else ``None``."""
    cache = getattr(stage, "compile_cache", None)
    if cache is None or not cache.warm:
        return None
    try:
        saved = json.loads((cache.folder / TIMES_FILE).read_text(encoding="utf-8"))
        if saved.get("key") != key:
            return None
        return {int(count): float(seconds) for count, seconds in saved["seconds"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing or damaged: time the buckets again


def _remember_times(stage: object, key: dict[str, object], seconds: dict[int, float]) -> None:
    """Keep ``seconds`` beside the compiled code for the next start (atomically; a failure only logs)."""
    cache = getattr(stage, "compile_cache", None)
    if cache is None:
        return
    path = cache.folder / TIMES_FILE
    try:
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps({"key": key, "seconds": seconds}), encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        log.warning("could not keep the warm-up's batch times in %s (%s)", path, exc)


def _estimate(stages: LocalStages, count: int, size: int, steps: int) -> float:
    """Seconds of a ``steps``-step batch of ``count``, from timed 2- and 4-step batches."""
    paint_2, rest_2 = _warm_run(stages, count, size, steps=2)
    paint_4, rest_4 = _warm_run(stages, count, size, steps=4)
    per_step = max(0.0, (paint_4 - paint_2) / 2)
    return paint_2 + per_step * max(0, steps - 2) + min(rest_2, rest_4)


def _warm_paint(stages: LocalStages, count: int, size: int, *, steps: int, profile: str = "quality") -> list[FaceJob]:
    """Paint ``count`` guided faces of ``steps`` steps in ``profile`` with the route's painter."""
    jobs = [
        FaceJob(
            JobRequest(
                job_id=f"warm-up-{seed}",
                user_id=0,
                face=FaceRequest(
                    "a portrait photo of a face", seed=seed, steps=steps, guidance=7.5, size=size, profile=profile
                ),
            )
        )
        for seed in range(count)
    ]
    return stages.painter.paint_batch(jobs, Unwatched())  # errors stop the warm-up: it has no member to tell


def _warm_run(stages: LocalStages, count: int, size: int, steps: int = 2) -> tuple[float, float]:
    """Paint ``count`` guided faces of ``steps`` steps with the route's painter, then run the faces stage's
    detector and PRNet on one of them; (seconds painting, seconds after)."""
    started = time.perf_counter()
    painted = _warm_paint(stages, count, size, steps=steps)
    painting = time.perf_counter() - started
    image = painted[0].image
    stages.faces.warm_up(image if image is not None else np.zeros((size, size, 3), np.uint8))
    return painting, time.perf_counter() - started - painting


def _warm_note(stage: object, sizes: tuple[int, ...], before: tuple[int, int]) -> str:
    """What the warm-up covered and whether the compile cache served it, for the start-up log."""
    if not getattr(stage, "compiled", False):
        return " (eager)"
    hits, misses = (now - then for now, then in zip(_cache_counters(), before, strict=True))
    shapes = ", ".join(map(str, sizes))
    cache = getattr(stage, "compile_cache", None)
    where = (
        "no compile cache"
        if cache is None
        else (f"compile cache {cache.folder} {'warm' if cache.warm else 'cold'} ({cache.files_before} files before)")
    )
    return f" (compiled batches {shapes}; {where}; {hits} graphs loaded from it, {misses} compiled)"
