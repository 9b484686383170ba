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
    defer_exports : hand file writing back as ``JobResult.export`` for the service's CPU thread.
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
    ) -> list[JobResult]:
        """Paint the batch, then detect and run PRNet on all its faces at once; files are written later."""
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
            if not is_out_of_memory(exc):
                raise
            release_cached_memory()
            if len(jobs) == 1:
                log.warning("out of GPU memory with a single job %s", jobs[0].job_id)
                return [JobResult(jobs[0].job_id, "failed", user_message=OUT_OF_MEMORY.format(job_id=jobs[0].job_id))]
            half = len(jobs) // 2  # the largest batch that fits is found in log2(batch) retries
            log.warning("out of GPU memory with a batch of %d; retrying as %d + %d", len(jobs), half, len(jobs) - half)
            return self.run_batch(jobs[:half], report, cancelled) + self.run_batch(jobs[half:], report, cancelled)
        paint_s = (time.perf_counter() - started) / len(jobs)
        results: dict[str, JobResult] = {}
        todo = []
        for job, image in zip(jobs, painted, strict=True):
            metadata = self._metadata(job, image, paint_s)
            if cancelled(job.job_id):
                results[job.job_id] = JobResult(job.job_id, "cancelled", user_message=CANCELLED)
            elif image.image is None:
                results[job.job_id] = JobResult(
                    job.job_id, "withheld", metadata=metadata, user_message=image.withheld_reason
                )
            else:
                report(JobProgress(job.job_id, "reconstructing"))
                todo.append((job, image.image, metadata))
        if todo:
            faces = self._reconstruct([image for _, image, _ in todo], [job.job_id for job, _, _ in todo])
            for (job, image, metadata), face in zip(todo, faces, strict=True):
                results[job.job_id] = self._reconstructed(job, image, metadata, face, paint_s)
        return [results[job.job_id] for job in jobs]

    def _reconstruct(self, images: list[np.ndarray], job_ids: list[str]) -> list[Any]:
        """Faces (or their errors, or None after a crash) for ``images``, PRNet batched over them.

        Out of GPU memory with several images, each is tried alone before any is given up.
        """
        try:
            return self.pipeline.reconstruct_many(images, crop=self.crop)
        except Exception as exc:
            if is_out_of_memory(exc) and len(images) > 1:
                release_cached_memory()
                log.warning("out of GPU memory reconstructing %d faces; one at a time", len(images))
                return [face for image, job_id in zip(images, job_ids, strict=True)
                        for face in self._reconstruct([image], [job_id])]  # fmt: skip
            log.exception("reconstruction failed for jobs %s", job_ids)
            return [None] * len(images)

    @staticmethod
    def _metadata(job: JobRequest, painted: Any, paint_s: float) -> dict[str, Any]:
        return {
            "prompt": job.face.prompt, "negative_prompt": job.face.negative_prompt, "seed": job.face.seed,
            "steps": job.face.steps, "guidance": job.face.guidance, "size": job.face.size,
            "model": getattr(painted, "model", None), "dropped_prompt": painted.dropped_prompt,
            "timings_s": {"text_to_image": round(paint_s, 3)},
        }  # fmt: skip

    def _reconstructed(
        self, job: JobRequest, image: np.ndarray, metadata: dict[str, Any], face: Any, paint_s: float
    ) -> JobResult:
        metadata["model"] = getattr(self.pipeline.text_to_image, "model", "unknown")
        if face is None:
            return JobResult(job.job_id, "failed", metadata=metadata, user_message=FAILED.format(job_id=job.job_id))
        if isinstance(face, T2FError):  # no face, and other problems the user can act on: still show the image
            from t2f.outputs import IMAGE_FILE, png_bytes

            return JobResult(job.job_id, "failed", files={IMAGE_FILE: png_bytes(image)}, metadata=metadata,
                             user_message=face.user_message, seconds=paint_s)  # fmt: skip
        metadata["timings_s"].update({k: round(v, 3) for k, v in face.timings.items()})
        metadata["face"] = {k: v for k, v in face_metadata(face).items() if k != "landmarks_68"}

        def export() -> JobResult:
            started = time.perf_counter()
            timings: dict[str, float] = {}
            files = result_files(face, timings, outputs=(job.output,))
            lighter = dataclasses.replace(face, mesh=decimate(face.mesh))
            files, upload_note = fit_for_upload(
                files, per_file=job.max_file_bytes, lighter=lambda: result_files(lighter, outputs=(job.output,))
            )
            metadata["timings_s"].update({k: round(v, 3) for k, v in timings.items()})
            metadata["upload_note"] = upload_note
            return JobResult(job.job_id, "done", files=files, metadata=metadata,
                             seconds=paint_s + time.perf_counter() - started)  # fmt: skip

        if not self.defer_exports:
            return export()
        return JobResult(job.job_id, "done", metadata=metadata, seconds=paint_s, export=export)
