"""What a stage sees of the service while it works on jobs (:class:`~t2f.serve.route.Watch`).

Made on the event loop, used from the stage's thread: progress goes back with ``call_soon_threadsafe``;
the cancel set and the preview counts are only read there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence

from t2f.serve.jobs import JobProgress, Outcome
from t2f.serve.queue import JobHandle


class StageWatch:
    """The service's side of a stage's work on ``handles`` (one batch, or one job).

    Parameters
    ----------
    loop : the service's event loop.
    handles : the jobs the stage works on.
    cancelled : whether a job was asked to stop (read from the stage's thread).
    dispatch : sends a job on, on the event loop (see :meth:`hand_on`).
    preview_interval_s : least seconds between two previews of a job.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handles: Sequence[JobHandle],
        *,
        cancelled: Callable[[str], bool],
        dispatch: Callable[[JobHandle, Outcome], None],
        preview_interval_s: float,
    ) -> None:
        self._loop = loop
        self._cancelled = cancelled
        self._dispatch = dispatch
        self._interval_s = preview_interval_s
        self._handles = {handle.job.job_id: handle for handle in handles}
        self._last_preview: dict[str, float] = {}
        self._handed_on: set[str] = set()

    def report(self, progress: JobProgress) -> None:
        handle = self._handles.get(progress.job_id)
        if handle is None:
            return
        if progress.note is None and handle.repaint_note is not None:  # a repaint says why throughout
            progress = dataclasses.replace(progress, note=handle.repaint_note)
        self._loop.call_soon_threadsafe(handle.update, progress)

    def cancelled(self, job_id: str) -> bool:
        return self._cancelled(job_id)

    def previews_due(self, job_ids: Sequence[str]) -> bool:
        """True when a follower shows one of these jobs' previews and its last one is at least the service's
        preview interval old (the first comes one interval after the job started); then all are marked made."""
        now = time.monotonic()
        interval = self._interval_s
        due = False
        for job_id in job_ids:
            handle = self._handles.get(job_id)
            if handle is None or handle.preview_watchers <= 0:
                continue
            last = self._last_preview.get(job_id, handle.started_at or now)
            due = due or now - last >= interval
        if due:
            self._last_preview.update(dict.fromkeys(job_ids, now))
        return due

    def hand_on(self, outcome: Outcome) -> None:
        job_id = outcome.job_id
        handle = self._handles.get(job_id)
        if handle is not None and job_id not in self._handed_on:
            self._handed_on.add(job_id)
            self._loop.call_soon_threadsafe(self._dispatch, handle, outcome)

    def handed_on(self, job_id: str) -> bool:
        """Whether the stage already sent this job on (so its batch's answer for it is not used again)."""
        return job_id in self._handed_on
