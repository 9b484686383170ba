"""Building and running the route's stages in tests, without the service around them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from t2f.config import Settings
from t2f.serve import inline
from t2f.serve.jobs import FaceJob, JobProgress, JobRequest, Outcome
from t2f.serve.route import Route
from t2f.serve.warmup import LocalStages
from t2f.stages.gate import GateLimits, PortraitFraming
from t2f.stages.pipeline import FacePipeline


class RecordingWatch:
    """A :class:`~t2f.serve.route.Watch` that keeps what the stages reported and handed on."""

    def __init__(self, cancelled: Callable[[str], bool] = lambda job_id: False, previews: bool = False) -> None:
        self.progress: list[JobProgress] = []
        self.handed: list[Outcome] = []
        self._cancelled = cancelled
        self._previews = previews

    def report(self, progress: JobProgress) -> None:
        self.progress.append(progress)

    def cancelled(self, job_id: str) -> bool:
        return self._cancelled(job_id)

    def previews_due(self, job_ids: Sequence[str]) -> bool:
        return self._previews

    def hand_on(self, outcome: Outcome) -> None:
        self.handed.append(outcome)


def local_stages(
    pipeline: FacePipeline,
    *,
    crop: str = "detect",
    gate: GateLimits | None = None,
    framing: PortraitFraming | None = None,
    parts_threads: int = 1,
    render_device: str | None = None,
) -> LocalStages:
    """The three local stages around ``pipeline`` (:meth:`LocalStages.around`)."""
    return LocalStages.around(
        pipeline, crop=crop, gate=gate, framing=framing, parts_threads=parts_threads, render_device=render_device
    )


def route_of(stages: LocalStages, *, faces_thread: bool = False, files_threads: int = 1) -> Route:
    return stages.route(faces_thread=faces_thread, files_threads=files_threads)


def through_route(stages: LocalStages, jobs: list[JobRequest], watch: RecordingWatch | None = None) -> list[Outcome]:
    """One batch painted, then each job's face found and files written, on this thread, in order."""
    return inline.through_route(stages, [FaceJob(job) for job in jobs], watch or RecordingWatch())


@contextlib.asynccontextmanager
async def studio_on(
    settings: Settings, pipeline: FacePipeline, *, gate: GateLimits | None = None
) -> AsyncIterator[Any]:
    """``t2f serve``'s stack (t2f.stack) around ``pipeline`` on a free loopback port: yields its web server."""
    from t2f.stack import WebPlan, open_stack

    local = local_stages(pipeline, crop="detect", gate=gate)
    async with open_stack(settings, route_of(local), web=WebPlan("127.0.0.1", 0, studio=True)) as stack:
        assert stack.web is not None
        yield stack.web
