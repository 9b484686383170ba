"""The paint stage: a batch of jobs painted in one denoising loop, on the GPU thread, and nothing else.

The safety checker, the detector and every CPU conversion run in the faces stage (:mod:`t2f.serve.faces`),
so the GPU thread goes on to the next batch as soon as the images are decoded. A failure of one job
becomes that job's result; a crash never escapes to the service's worker.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from t2f.errors import T2FError, is_out_of_memory, release_failed_call
from t2f.faces import FaceImage, StepProgress
from t2f.report import FaceReport
from t2f.serve.jobs import CANCELLED, FaceJob, JobPhase, JobProgress, JobResult, JobStatus, Outcome, failed
from t2f.serve.route import Watch
from t2f.stages.gate import PortraitFraming

log = logging.getLogger(__name__)
OUT_OF_MEMORY = "The GPU ran out of memory for this face (job {job_id}); please try again in a moment."


class JobAborted(Exception):
    """Every job of the running batch was cancelled or timed out: stop denoising."""


class Painter:
    """Text to image for a batch of jobs (:class:`~t2f.serve.route.PaintStage`).

    Parameters
    ----------
    text_to_image : a :class:`~t2f.stages.text2img.TextToImage`, or anything with its ``generate_batch``,
        ``model`` and ``revision``.
    framing : the portrait template and default negative prompt around each member's words.
    """

    def __init__(self, text_to_image: Any, *, framing: PortraitFraming | None = None) -> None:
        self.text_to_image = text_to_image
        self.framing = framing or PortraitFraming(template="", negative="")  # default: paint the words as given

    def paint(self, jobs: Sequence[FaceJob], watch: Watch) -> list[Outcome]:
        """Paint the jobs that need it in one loop; a photo job comes back as it is.

        A batch out of GPU memory is halved and each half painted whole; a batch that breaks otherwise is
        painted one job at a time, so one bad job fails alone.
        """
        texts = [job for job in jobs if job.image is None]
        painted = {job.job_id: outcome for job, outcome in zip(texts, self._paint(texts, watch), strict=True)}
        return [painted.get(job.job_id, job) for job in jobs]

    def _paint(self, jobs: list[FaceJob], watch: Watch) -> list[Outcome]:
        if not jobs:
            return []
        try:
            return list(self.paint_batch(jobs, watch))
        except JobAborted:
            return [JobResult(job.job_id, JobStatus.CANCELLED, user_message=CANCELLED) for job in jobs]
        except Exception as exc:
            return self._after_failure(jobs, watch, exc)

    def paint_batch(self, jobs: Sequence[FaceJob], watch: Watch) -> list[FaceJob]:
        """Paint ``jobs`` (all of them need it) in one loop, and raise what the stage raises (:class:`JobAborted`
        once every job is cancelled): :meth:`paint` turns that into each job's result; the warm-up lets it stop."""
        job_ids = [job.job_id for job in jobs]

        def on_step(progress: StepProgress) -> None:
            if all(watch.cancelled(job_id) for job_id in job_ids):
                raise JobAborted
            for index, job_id in enumerate(job_ids):
                preview = progress.previews[index] if progress.previews else None
                watch.report(JobProgress(job_id, JobPhase.PAINTING, progress.step, progress.total, preview))

        started = time.perf_counter()
        images = self.text_to_image.generate_batch(
            [self.framing.frame(job.request.face) for job in jobs],
            on_step=on_step,
            previews=lambda step: watch.previews_due(job_ids),
            check_safety=False,  # the faces stage checks each image, off this thread
        )
        seconds = (time.perf_counter() - started) / len(jobs)
        return [self._painted(job, image, seconds) for job, image in zip(jobs, images, strict=True)]

    def _after_failure(self, jobs: list[FaceJob], watch: Watch, error: Exception) -> list[Outcome]:
        """Out of memory: halve the batch (the largest that fits is found in log2(batch) tries); otherwise
        paint each job alone; a job alone that fails again fails by itself."""
        if is_out_of_memory(error):
            release_failed_call(error)
            if len(jobs) == 1:
                log.warning("out of GPU memory with a single job %s", jobs[0].job_id)
                return [
                    JobResult(
                        jobs[0].job_id, JobStatus.FAILED, user_message=OUT_OF_MEMORY.format(job_id=jobs[0].job_id)
                    )
                ]
            half = len(jobs) // 2
            log.warning("out of GPU memory with a batch of %d; retrying as %d + %d", len(jobs), half, len(jobs) - half)
            return self._paint(jobs[:half], watch) + self._paint(jobs[half:], watch)
        if len(jobs) > 1:
            log.warning("a batch of %d failed (%s); painting its jobs one by one", len(jobs), type(error).__name__)
            return [outcome for job in jobs for outcome in self._paint([job], watch)]
        if isinstance(error, T2FError):  # e.g. a request the stage refuses: the member can act on the message
            return [JobResult(jobs[0].job_id, JobStatus.FAILED, user_message=error.user_message)]
        log.error("painting job %s failed", jobs[0].job_id, exc_info=error)
        return [failed(jobs[0].job_id)]

    def _painted(self, job: FaceJob, painting: FaceImage, seconds: float) -> FaceJob:
        """The job with its image and the report so far (what was asked, what was painted, by which model)."""
        stage = self.text_to_image
        report = FaceReport.of_painting(
            painting,
            model=getattr(stage, "model", "unknown"),
            revision=getattr(stage, "revision", None),
            request=job.request.face,
            seeds_tried=job.request.seeds_tried,
        )
        report = dataclasses.replace(report, timings_s={"text_to_image": round(seconds, 4)})
        return dataclasses.replace(job, painting=painting, report=report, seconds=job.seconds + seconds)
