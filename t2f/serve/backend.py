"""The local backend: the whole face pipeline on this machine's GPU (or CPU), one batch at a time.

``run_batch`` runs on the service's worker thread: diffusion and PRNet are batched. ``export`` (the
files of one face) runs on the service's CPU thread. Any failure of one job becomes that job's
result; a crash never escapes to the worker.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from t2f.errors import T2FError
from t2f.export.package import result_files
from t2f.faces import FaceImage, FaceRequest, FaceResult, StepProgress, decimate
from t2f.files.outputs import IMAGE_FILE, png_bytes
from t2f.report import FaceReport
from t2f.serve.jobs import (
    CANCELLED,
    FinishedFace,
    JobPhase,
    JobProgress,
    JobRequest,
    JobResult,
    JobStatus,
    failed,
)
from t2f.serve.uploads import fit_for_upload
from t2f.stages.pipeline import FacePipeline
from t2f.stages.prnet.checkpoint import provenance

log = logging.getLogger(__name__)
OUT_OF_MEMORY = "The GPU ran out of memory for this face (job {job_id}); please try again in a moment."


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA, MPS and XPU raise it), by name so this module needs no torch import."""
    return type(exc).__name__ == "OutOfMemoryError"


def release_cached_memory() -> None:
    """Hand the allocator's cached blocks back after an out-of-memory, so the retry starts clean."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class JobAborted(Exception):
    """Every job of the running batch was cancelled or timed out: stop denoising."""


class LocalFaceBackend:
    """Text -> image -> mesh -> files for a batch of jobs.

    Parameters
    ----------
    pipeline : a :class:`FacePipeline` with its text-to-image stage.
    crop : "detect" (MTCNN) or "whole".
    preview_every : attach a TAESD preview every N steps (when the stage has a previewer).
    defer_exports : return :class:`FinishedFace` for the service to export on its CPU thread (else export here).
    """

    def __init__(
        self, pipeline: FacePipeline, *, crop: str = "detect", preview_every: int = 5, defer_exports: bool = True
    ) -> None:
        self.pipeline = pipeline
        self.crop = crop
        self.preview_every = preview_every
        self.defer_exports = defer_exports  # False: write files on the GPU thread (the naive baseline)

    def warm_up(self, size: int = 512, *, max_batch: int = 1, compiled: bool = False) -> None:
        """Short generations and reconstructions, so no user's job pays start-up costs.

        torch.compile compiles again for each new input shape: a graph for the first batch size, one for
        batch size 1 (always specialised), then one dynamic in the batch size. With ``compiled`` the
        warm-up meets every shape a job can bring: one face with and without classifier-free guidance
        (guidance 1 halves the UNet's batch), then ``max_batch`` faces.
        """
        runs = [(1, 7.5)]
        if compiled:
            runs += [(1, 1.0)] + ([(max_batch, 7.5)] if max_batch > 1 else [])
        for count, guidance in runs:
            requests = [
                FaceRequest("a portrait photo of a face", seed=seed, steps=2, guidance=guidance, size=size)
                for seed in range(count)
            ]
            painted = self.pipeline.text_to_image.generate_batch(requests)
            images = [p.image if p.image is not None else np.zeros((size, size, 3), np.uint8) for p in painted]
            if self.crop != "whole":  # the detector's first call builds its graphs; its verdict does not matter
                self.pipeline.reconstruct_many(images, crop=self.crop)
            self.pipeline.reconstruct_many(images, crop="whole")  # PRNet at this batch size, face or not

    def run_batch(
        self, jobs: Sequence[JobRequest], report: Callable[[JobProgress], None], cancelled: Callable[[str], bool]
    ) -> list[JobResult | FinishedFace]:
        """Paint the batch, then detect and run PRNet on all its faces at once; files are written by :meth:`export`."""
        started = time.perf_counter()

        def on_step(progress: StepProgress) -> None:
            if all(cancelled(job.job_id) for job in jobs):
                raise JobAborted
            for index, job in enumerate(jobs):
                preview = progress.previews[index] if progress.previews else None
                report(JobProgress(job.job_id, JobPhase.PAINTING, progress.step, progress.total, preview))

        try:
            painted = self.pipeline.text_to_image.generate_batch(
                [job.face for job in jobs], on_step=on_step, preview_every=self.preview_every
            )
        except JobAborted:
            return [JobResult(job.job_id, JobStatus.CANCELLED, user_message=CANCELLED) for job in jobs]
        except Exception as exc:
            if not is_out_of_memory(exc):
                return self._one_by_one(jobs, report, cancelled, exc)
            release_cached_memory()
            if len(jobs) == 1:
                log.warning("out of GPU memory with a single job %s", jobs[0].job_id)
                message = OUT_OF_MEMORY.format(job_id=jobs[0].job_id)
                return [JobResult(jobs[0].job_id, JobStatus.FAILED, user_message=message)]
            half = len(jobs) // 2  # the largest batch that fits is found in log2(batch) retries
            log.warning("out of GPU memory with a batch of %d; retrying as %d + %d", len(jobs), half, len(jobs) - half)
            return self.run_batch(jobs[:half], report, cancelled) + self.run_batch(jobs[half:], report, cancelled)
        paint_s = (time.perf_counter() - started) / len(jobs)
        results: dict[str, JobResult | FinishedFace] = {}
        todo: list[tuple[JobRequest, np.ndarray, FaceReport]] = []
        for job, image in zip(jobs, painted, strict=True):
            face_report = self._painting_report(image, paint_s)
            if cancelled(job.job_id):
                results[job.job_id] = JobResult(job.job_id, JobStatus.CANCELLED, user_message=CANCELLED)
            elif image.image is None:
                results[job.job_id] = JobResult(
                    job.job_id, JobStatus.WITHHELD, report=face_report, user_message=image.withheld_reason
                )
            else:
                report(JobProgress(job.job_id, JobPhase.RECONSTRUCTING))
                todo.append((job, image.image, face_report))
        if todo:
            faces = self._reconstruct([image for _, image, _ in todo], [job.job_id for job, _, _ in todo])
            for (job, image, face_report), face in zip(todo, faces, strict=True):
                results[job.job_id] = self._reconstructed(job, image, face_report, face, paint_s)
        return [results[job.job_id] for job in jobs]

    def _one_by_one(
        self,
        jobs: Sequence[JobRequest],
        report: Callable[[JobProgress], None],
        cancelled: Callable[[str], bool],
        error: Exception,
    ) -> list[JobResult | FinishedFace]:
        """A batch broke: run its jobs alone, so one bad job fails by itself and the others finish."""
        if len(jobs) > 1:
            log.warning("a batch of %d failed (%s); running its jobs one by one", len(jobs), type(error).__name__)
            results: list[JobResult | FinishedFace] = []
            for job in jobs:
                try:
                    results += self.run_batch([job], report, cancelled)
                except Exception:
                    log.exception("job %s failed", job.job_id)
                    results.append(failed(job.job_id))
            return results
        if isinstance(error, T2FError):  # e.g. a request the stage refuses: the member can act on the message
            return [JobResult(jobs[0].job_id, JobStatus.FAILED, user_message=error.user_message)]
        raise error  # the service logs it with the job id and fails this job alone

    def export(self, finished: FinishedFace) -> JobResult:
        """The files of one face, fitted to the job's upload budget; a lighter mesh only when they do not fit."""
        started = time.perf_counter()
        job, face = finished.job, finished.face
        timings: dict[str, float] = {}
        files = result_files(face, timings, outputs=(job.output,))
        upload_note = None
        if job.upload is not None:

            def lighter() -> dict[str, bytes]:
                return result_files(dataclasses.replace(face, mesh=decimate(face.mesh)), outputs=(job.output,))

            files, upload_note = fit_for_upload(files, budget=job.upload, lighter=lighter)
        face_report = dataclasses.replace(finished.report.with_timings(timings), upload_note=upload_note)
        seconds = finished.seconds + time.perf_counter() - started
        return JobResult(job.job_id, JobStatus.DONE, files=files, report=face_report, seconds=seconds)

    def _reconstruct(self, images: list[np.ndarray], job_ids: list[str]) -> list[FaceResult | T2FError | None]:
        """Faces (or their errors, or None after a crash) for ``images``, PRNet batched over them.

        Out of GPU memory with several images, each is tried alone before any is given up.
        """
        try:
            return list(self.pipeline.reconstruct_many(images, crop=self.crop))
        except Exception as exc:
            if len(images) > 1:  # out of memory, or one image that breaks PRNet: each is tried alone
                if is_out_of_memory(exc):
                    release_cached_memory()
                log.warning("reconstructing %d faces failed (%s); one at a time", len(images), type(exc).__name__)
                return [face for image, job_id in zip(images, job_ids, strict=True)
                        for face in self._reconstruct([image], [job_id])]  # fmt: skip
            log.exception("reconstruction failed for job %s", job_ids[0])
            return [None]

    def _painting_report(self, painted: FaceImage, paint_s: float) -> FaceReport:
        stage = self.pipeline.text_to_image
        face_report = FaceReport.of_painting(
            painted, model=getattr(stage, "model", "unknown"), revision=getattr(stage, "revision", None)
        )
        return dataclasses.replace(face_report, timings_s={"text_to_image": round(paint_s, 4)})

    def _reconstructed(
        self,
        job: JobRequest,
        image: np.ndarray,
        face_report: FaceReport,
        face: FaceResult | T2FError | None,
        paint_s: float,
    ) -> JobResult | FinishedFace:
        if face is None:
            return dataclasses.replace(failed(job.job_id), report=face_report)
        if isinstance(face, T2FError):  # no face, and other problems the member can act on: still show the image
            return JobResult(job.job_id, JobStatus.FAILED, files={IMAGE_FILE: png_bytes(image)}, report=face_report,
                             user_message=face.user_message, seconds=paint_s)  # fmt: skip
        face_report = face_report.with_face(face, provenance(self.pipeline.prnet.config))
        finished = FinishedFace(job=job, face=face, report=face_report, seconds=paint_s)
        return finished if self.defer_exports else self.export(finished)
