"""The fair queue: one line per member, served round robin, with per-server holds.

:class:`JobHandle` is a caller's view of one job (its result future and latest progress);
:class:`JobQueue` orders waiting handles so one member's burst never starves the others.
Event-loop only: nothing here blocks or touches a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from t2f.serve.jobs import FaceJob, JobProgress, JobRequest, JobResult, Stage


class JobHandle:
    """The caller's view of one job: its result future and its latest progress."""

    def __init__(self, job: JobRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.job = job
        self.result: asyncio.Future[JobResult] = loop.create_future()
        self.latest: JobProgress | None = None
        self.repaint_note: str | None = None  # why the job is being painted again (shown with its progress)
        self.started = False
        self.queued_at = time.monotonic()  # for the job log's seconds (t2f.serve.joblog)
        self.started_at: float | None = None
        self.stage: Stage | None = None  # where on the route it is; None while it waits in the queue
        self.preview_watchers = 0  # followers that would show a preview now (see watch_previews)
        self.changed = asyncio.Event()
        self._on_start: list[Callable[[], None]] = []

    @property
    def face_job(self) -> FaceJob:
        """The job as the route takes it from the queue: nothing painted yet (or a member's photo)."""
        return FaceJob(request=self.job, repaint_note=self.repaint_note)

    def watch_previews(self) -> Callable[[], None]:
        """Count a follower that shows step previews (a message it can still edit, a page's live stream);
        previews are decoded only while one watches. Returns the call that stops watching."""
        self.preview_watchers += 1
        stopped = False

        def stop() -> None:
            nonlocal stopped
            if not stopped:
                stopped = True
                self.preview_watchers -= 1

        return stop

    def when_active(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the event loop when the worker takes this job, or when it ends without
        starting (cancelled while waiting); at once if either already happened.

        Followers of a job start here, so nothing waits on a job that is only queued.
        """
        if self.started or self.result.done():
            callback()
        else:
            self._on_start.append(callback)

    def _activate(self) -> None:
        callbacks, self._on_start = self._on_start, []
        for callback in callbacks:
            callback()

    def start(self) -> None:
        self.started = True
        self.stage = Stage.PAINT
        self.started_at = time.monotonic()
        self._activate()

    def update(self, progress: JobProgress) -> None:
        self.latest = progress
        self.changed.set()

    def finish(self, result: JobResult) -> None:
        if not self.result.done():
            self.result.set_result(result)
        self.changed.set()
        self._activate()


def batch_shape(job: JobRequest) -> tuple[int, int, bool, str] | None:
    """Jobs share a denoising loop when their tensors have the same shapes: the same steps and size, and
    guided or not (guidance above 1 doubles the UNet's batch; its scale changes no shape, so guided jobs of
    any scale paint together), and the same profile (``fast`` may change the scheduler and the UNet the
    loop calls). ``None`` for a photo job, which is not painted and so joins any batch."""
    return None if job.is_photo else (job.face.steps, job.face.size, job.face.guidance > 1, job.face.profile)


class JobQueue:
    """Waiting jobs, one deque per member, served round robin; servers (or everyone) can be held."""

    def __init__(self) -> None:
        self._lines: dict[int, deque[JobHandle]] = {}
        self._turns: deque[int] = deque()  # members in round-robin order
        self.paused = False  # every server's jobs held (shutdown, or an operator)
        self._paused_guilds: set[int] = set()  # servers whose moderators hold their own jobs

    def __len__(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def add(self, handle: JobHandle) -> None:
        user = handle.job.user_id
        if not self._lines.get(user):
            self._lines.setdefault(user, deque())
            if user not in self._turns:
                self._turns.append(user)
        self._lines[user].append(handle)

    def add_front(self, handle: JobHandle) -> None:
        """Put a job back at the head of its member's line, with the member's turn next: a repaint joins
        the next batch beside other members' jobs instead of waiting behind everyone."""
        user = handle.job.user_id
        self._lines.setdefault(user, deque()).appendleft(handle)
        if user in self._turns:
            self._turns.remove(user)
        self._turns.appendleft(user)

    def remove(self, handle: JobHandle) -> bool:
        """Take a waiting handle out of its line; False if it is not waiting."""
        line = self._lines.get(handle.job.user_id)
        if line is None or handle not in line:
            return False
        line.remove(handle)
        return True

    def waiting_for(self, user_id: int) -> int:
        return len(self._lines.get(user_id, ()))

    def ordered(self) -> list[JobHandle]:
        """Waiting jobs in the order the worker will start them (round robin across members)."""
        lines = {user: list(line) for user, line in self._lines.items()}
        order, turns = [], deque(self._turns)
        while turns:
            user = turns.popleft()
            if lines.get(user):
                order.append(lines[user].pop(0))
                turns.append(user)
        return order

    def is_paused(self, guild_id: int | None) -> bool:
        """Whether this server's waiting jobs are held (by its moderators, or by a service-wide pause)."""
        return self.paused or (guild_id is not None and guild_id in self._paused_guilds)

    def runnable(self) -> list[JobHandle]:
        """Waiting jobs that may start now (their server is not held), in the order they will."""
        return [handle for handle in self.ordered() if not self.is_paused(handle.job.guild_id)]

    def hold(self, guild_id: int | None) -> None:
        if guild_id is None:
            self.paused = True
        else:
            self._paused_guilds.add(guild_id)

    def release(self, guild_id: int | None) -> None:
        if guild_id is None:
            self.paused = False
        else:
            self._paused_guilds.discard(guild_id)

    def take_batch(self, max_batch: int) -> list[JobHandle]:
        """The next runnable job plus up to ``max_batch - 1`` more of the same shape (or photo jobs), fairly.

        The batch's shape is the first painted job's in the order; photo jobs fit every shape.
        """
        order = self.runnable()
        if not order:
            return []
        shape = next((s for h in order if (s := batch_shape(h.job)) is not None), None)
        batch = [h for h in order if batch_shape(h.job) in (None, shape)][:max_batch]
        for handle in batch:
            self._lines[handle.job.user_id].remove(handle)
        # The members served go to the back of the line.
        for user in dict.fromkeys(h.job.user_id for h in batch):
            self._turns.remove(user)
            if self._lines[user]:
                self._turns.append(user)
            else:
                del self._lines[user]
        return batch
