"""The local backend: the whole face pipeline on this machine's GPU (or CPU), one batch at a time.

Runs on the service's worker thread. Diffusion is batched; reconstruction and export follow job by
job. Any failure of one job becomes that job's result; a crash never escapes to the worker.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from t2f.errors import T2FError
from t2f.pipeline import FacePipeline, face_metadata, result_files
from t2f.prnet.postprocess import decimate
from t2f.service import FAILED, JobProgress, JobRequest, JobResult
from t2f.text2img import FaceRequest, StepProgress
from t2f.uploads import fit_for_upload

log = logging.getLogger(__name__)
CANCELLED = "Cancelled."


class JobAborted(Exception):
    """Every job of the running batch was cancelled or timed out: stop denoising."""


class LocalFaceBackend:
    """Text -> image -> mesh -> files for a batch of jobs.

    Parameters
    ----------
    pipeline : a :class:`FacePipeline` with its text-to-image stage.
    crop : "detect" (MTCNN) or "whole".
    preview_every : attach a TAESD preview every N steps (when the stage has a previewer).
    """

    def __init__(self, pipeline: FacePipeline, *, crop: str = "detect", preview_every: int = 5) -> None:
        self.pipeline = pipeline
        self.crop = crop
        self.preview_every = preview_every

    def warm_up(self, size: int = 512) -> None:
        """One short generation and reconstruction, so the first user's job pays no start-up costs."""
        painted = self.pipeline.text_to_image.generate(FaceRequest("a portrait photo of a face", steps=2, size=size))
        image = painted.image if painted.image is not None else np.zeros((size, size, 3), np.uint8)
        self.pipeline.reconstruct(image, crop="whole")

    def run_batch(
        self, jobs: Sequence[JobRequest], report: Callable[[JobProgress], None], cancelled: Callable[[str], bool]
    ) -> list[JobResult]:
        started = time.perf_counter()

        def on_step(progress: StepProgress) -> None:
            if all(cancelled(job.job_id) for job in jobs):
                raise JobAborted
            for index, job in enumerate(jobs):
                preview = progress.previews[index] if progress.previews else None
                report(JobProgress(job.job_id, "painting", progress.step, progress.total, preview))

        try:
            painted = self.pipeline.text_to_image.generate_batch(
                [job.face for job in jobs], on_step=on_step, preview_every=self.preview_every
            )
        except JobAborted:
            return [JobResult(job.job_id, "cancelled", user_message=CANCELLED) for job in jobs]
        except Exception as exc:
            if len(jobs) > 1 and type(exc).__name__ == "OutOfMemoryError":
                log.warning("out of GPU memory with a batch of %d; running the jobs one by one", len(jobs))
                return [r for job in jobs for r in self.run_batch([job], report, cancelled)]
            raise
        paint_s = (time.perf_counter() - started) / len(jobs)
        return [
            self._finish_job(job, image, report, cancelled, paint_s) for job, image in zip(jobs, painted, strict=True)
        ]

    def _finish_job(
        self,
        job: JobRequest,
        painted: Any,
        report: Callable[[JobProgress], None],
        cancelled: Callable[[str], bool],
        paint_s: float,
    ) -> JobResult:
        started = time.perf_counter()
        model = self.pipeline.text_to_image
        metadata: dict[str, Any] = {
            "prompt": job.face.prompt,
            "negative_prompt": job.face.negative_prompt,
            "seed": job.face.seed,
            "steps": job.face.steps,
            "guidance": job.face.guidance,
            "size": job.face.size,
            "model": getattr(model, "model", "unknown"),
            "dropped_prompt": painted.dropped_prompt,
            "timings_s": {"text_to_image": round(paint_s, 3)},
        }
        if cancelled(job.job_id):
            return JobResult(job.job_id, "cancelled", user_message=CANCELLED)
        if painted.image is None:
            return JobResult(job.job_id, "withheld", metadata=metadata, user_message=painted.withheld_reason)
        report(JobProgress(job.job_id, "reconstructing"))
        try:
            face = self.pipeline.reconstruct(painted.image, crop=self.crop)
            timings = dict(face.timings)
            files = result_files(face, timings, outputs=(job.output,))
            lighter = dataclasses.replace(face, mesh=decimate(face.mesh))
            files, upload_note = fit_for_upload(
                files, per_file=job.max_file_bytes, lighter=lambda: result_files(lighter, outputs=(job.output,))
            )
        except T2FError as exc:  # no face, and other problems the user can act on: still show the image
            from t2f.outputs import png_bytes

            return JobResult(
                job.job_id,
                "failed",
                files={"image.png": png_bytes(painted.image)},
                metadata=metadata,
                user_message=exc.user_message,
                seconds=paint_s,
            )
        except Exception:
            log.exception("job %s failed after painting", job.job_id)
            return JobResult(job.job_id, "failed", metadata=metadata, user_message=FAILED.format(job_id=job.job_id))
        metadata["timings_s"].update({k: round(v, 3) for k, v in timings.items()})
        metadata["face"] = {k: v for k, v in face_metadata(face).items() if k != "landmarks_68"}
        metadata["upload_note"] = upload_note
        return JobResult(
            job.job_id, "done", files=files, metadata=metadata, seconds=paint_s + time.perf_counter() - started
        )
