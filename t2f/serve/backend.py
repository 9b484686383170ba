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
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from t2f.bounds import SEED
from t2f.errors import T2FError, is_out_of_memory, release_failed_call
from t2f.export.package import mesh_files, result_files
from t2f.faces import FaceImage, FaceResult, StepProgress, decimate
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
    Outcome,
    Pending,
    Repaint,
    failed,
)
from t2f.serve.uploads import fit_for_upload
from t2f.serve.warmup import warm_up
from t2f.stages.gate import GateLimits, GateReason, GateVerdict, PortraitFraming, final_message, judge, repaint_note
from t2f.stages.pipeline import FacePipeline
from t2f.stages.prnet.checkpoint import provenance
from t2f.timing import timed

if TYPE_CHECKING:
    from t2f.export.render_torch import ViewRenderer

log = logging.getLogger(__name__)
NO_FACE_IN_PHOTO = (
    "No face found in that picture. A clear, frontal-ish photo of one person works best: the whole face "
    "visible, in good light, not too small or far away."
)
PHOTO_FLAGGED = "The safety filter flagged that image, so it cannot be used."
OUT_OF_MEMORY = "The GPU ran out of memory for this face (job {job_id}); please try again in a moment."


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
    framing : the portrait template and default negative prompt around each member's words.
    gate : what a usable face is (one, big enough, frontal enough); images that fail are repainted with the
        next seed while the job has repaints left. Needs ``crop="detect"``.
    overlap : find and rebuild faces on a thread of their own (``faces_thread``), so the GPU paints the next
        batch meanwhile; worth it where painting runs on a GPU (on a CPU both halves want the same cores).
        ``run_batch`` then returns :class:`Pending` for the jobs still there.
    export_threads : threads that make one face's files together with the thread exporting it (the
        turntable's frames, the OBJs, GLB, PNG and preview at once); 1 makes them in turn on that thread.
    render_device : where PyTorch draws the preview and turntable (the GPU); ``None``: numpy on the CPU.
    """

    def __init__(
        self,
        pipeline: FacePipeline,
        *,
        crop: str = "detect",
        preview_every: int = 5,
        defer_exports: bool = True,
        framing: PortraitFraming | None = None,
        gate: GateLimits | None = None,
        overlap: bool = False,
        export_threads: int = 1,
        render_device: str | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.faces_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="t2f-faces") if overlap else None
        # a member alone with a fast GPU waits mostly on their files: a face's parts are made in parallel
        parallel = export_threads > 1
        self.export_pool = ThreadPoolExecutor(export_threads, thread_name_prefix="t2f-files") if parallel else None
        self.crop = crop
        self.preview_every = preview_every
        self.defer_exports = defer_exports  # False: write files on the GPU thread (the naive baseline)
        self.framing = framing or PortraitFraming(template="", negative="")  # default: paint the words as given
        self.gate = gate  # None: any detected face is used (the largest), no repaints for pose or size
        self.render_device: str | None = None
        self.renderer: ViewRenderer | None = None
        self.draw_on(render_device)

    def draw_on(self, device: str | None) -> None:
        """Draw the previews and turntables with PyTorch on ``device`` (a GPU) from now on; ``None``: numpy."""
        self.render_device, self.renderer = device, None
        if device is not None:
            from t2f.export.render_torch import ViewRenderer  # torch only where a device asks for it

            self.renderer = ViewRenderer(device)

    def warm_up(
        self, size: int = 512, *, max_batch: int = 1, compiled: bool = False, steps: int = 2
    ) -> dict[int, float]:
        """Run every shape the models will meet once (see :func:`t2f.serve.warmup.warm_up`); call it on the
        thread that runs batches. Returns batch size -> estimated seconds of a ``steps``-step batch, for the ETA."""
        return warm_up(self, size, max_batch=max_batch, compiled=compiled, steps=steps)

    def run_batch(
        self, jobs: Sequence[JobRequest], report: Callable[[JobProgress], None], cancelled: Callable[[str], bool]
    ) -> list[Outcome | Pending]:
        """Paint the text jobs, gate each image, check the photo jobs, then run PRNet on every usable face at once.

        An image without a usable face gives a :class:`Repaint` (the job with its next seed) while the job
        has repaints left, else the job's result with the reason and the last image. A photo job skips the
        painter: the safety checker and the detector decide whether it joins the PRNet batch. With
        ``overlap`` only the painting happens here: the rest goes to the faces thread, and each job still
        in it is returned :class:`Pending`, so the GPU paints the next batch while faces are detected.
        """
        started = time.perf_counter()
        texts = [job for job in jobs if not job.is_photo]
        decided: dict[str, Outcome | Pending] = {}
        paintings: dict[str, FaceImage] = {}
        if texts:
            painted = self._paint(texts, report, cancelled)
            if isinstance(painted, dict):  # the painter stopped or failed: those jobs have their outcomes
                decided.update(painted)
            else:
                paintings = {job.job_id: painting for job, painting in zip(texts, painted, strict=True)}
        paint_s = (time.perf_counter() - started) / max(len(texts), 1)
        rest = [job for job in jobs if job.job_id not in decided]
        if self.faces_thread is None or not rest:
            decided.update(self._find_faces(rest, paintings, paint_s, report, cancelled))
            return [decided[job.job_id] for job in jobs]
        future = self.faces_thread.submit(self._find_faces, rest, paintings, paint_s, report, cancelled)
        return [decided.get(job.job_id) or Pending(job.job_id, future) for job in jobs]

    def _find_faces(
        self,
        jobs: list[JobRequest],
        paintings: dict[str, FaceImage],
        paint_s: float,
        report: Callable[[JobProgress], None],
        cancelled: Callable[[str], bool],
    ) -> dict[str, Outcome]:
        """The half of a batch after painting: gate or check each image, then PRNet on the usable faces.

        CPU-bound (MTCNN costs ~80 ms of CPU per image) apart from PRNet's few milliseconds of GPU work.
        """
        results: dict[str, Outcome] = {}
        todo: list[tuple[JobRequest, np.ndarray, FaceReport, GateVerdict | None]] = []
        for job in jobs:
            if job.is_photo:
                checked = self._check_photo(job, report, cancelled)
                if isinstance(checked, JobResult):
                    results[job.job_id] = checked
                else:
                    todo.append(checked)
                continue
            painting = paintings[job.job_id]
            face_report = self._painting_report(job, painting, paint_s)
            if cancelled(job.job_id):
                results[job.job_id] = JobResult(job.job_id, JobStatus.CANCELLED, user_message=CANCELLED)
            elif painting.image is None:
                results[job.job_id] = self._unusable(
                    job, GateReason.FLAGGED, None, face_report, painting.withheld_reason
                )
            elif (verdict := self._judge(painting.image)) is not None and not verdict.passed:
                assert verdict.reason is not None
                results[job.job_id] = self._unusable(job, verdict.reason, painting.image, face_report)
            else:
                report(JobProgress(job.job_id, JobPhase.RECONSTRUCTING))
                todo.append((job, painting.image, face_report, verdict))
        if todo:
            faces = self._reconstruct([(image, verdict) for _, image, _, verdict in todo], [j.job_id for j, *_ in todo])
            for (job, image, face_report, _), face in zip(todo, faces, strict=True):
                results[job.job_id] = self._reconstructed(
                    job, image, face_report, face, 0.0 if job.is_photo else paint_s
                )
        return results

    def _paint(
        self, jobs: list[JobRequest], report: Callable[[JobProgress], None], cancelled: Callable[[str], bool]
    ) -> list[FaceImage] | dict[str, Outcome | Pending]:
        """The painted images of ``jobs``, or each job's outcome when painting stopped (cancelled, out of
        memory, broken; a batch out of memory is halved and each half run whole)."""

        def on_step(progress: StepProgress) -> None:
            if all(cancelled(job.job_id) for job in jobs):
                raise JobAborted
            for index, job in enumerate(jobs):
                preview = progress.previews[index] if progress.previews else None
                report(JobProgress(job.job_id, JobPhase.PAINTING, progress.step, progress.total, preview))

        try:
            return self.pipeline.text_to_image.generate_batch(
                [self.framing.frame(job.face) for job in jobs], on_step=on_step, preview_every=self.preview_every
            )
        except JobAborted:
            return {job.job_id: JobResult(job.job_id, JobStatus.CANCELLED, user_message=CANCELLED) for job in jobs}
        except Exception as exc:
            if not is_out_of_memory(exc):
                outcomes = self._one_by_one(jobs, report, cancelled, exc)
            elif len(jobs) == 1:
                release_failed_call(exc)
                log.warning("out of GPU memory with a single job %s", jobs[0].job_id)
                message = OUT_OF_MEMORY.format(job_id=jobs[0].job_id)
                outcomes = [JobResult(jobs[0].job_id, JobStatus.FAILED, user_message=message)]
            else:
                release_failed_call(exc)
                half = len(jobs) // 2  # the largest batch that fits is found in log2(batch) retries
                log.warning(
                    "out of GPU memory with a batch of %d; retrying as %d + %d", len(jobs), half, len(jobs) - half
                )
                outcomes = self.run_batch(jobs[:half], report, cancelled) + self.run_batch(
                    jobs[half:], report, cancelled
                )
            return {job.job_id: outcome for job, outcome in zip(jobs, outcomes, strict=True)}

    def _check_photo(
        self, job: JobRequest, report: Callable[[JobProgress], None], cancelled: Callable[[str], bool]
    ) -> JobResult | tuple[JobRequest, np.ndarray, FaceReport, GateVerdict | None]:
        """A photo's way into the PRNet batch: the safety checker first, then a detected face (the largest).

        No whole-image fallback: a photo without a detected face is refused with what works instead.
        """
        assert job.photo is not None
        photo = job.photo
        face_report = FaceReport()
        if cancelled(job.job_id):
            return JobResult(job.job_id, JobStatus.CANCELLED, user_message=CANCELLED)
        report(JobProgress(job.job_id, JobPhase.RECONSTRUCTING))
        stage = self.pipeline.text_to_image
        timings: dict[str, float] = {}
        with timed(timings, "safety_check"):
            flagged = stage is not None and stage.check_image(photo)
        if flagged:
            return JobResult(job.job_id, JobStatus.WITHHELD, report=face_report, user_message=PHOTO_FLAGGED)
        boxes = self.pipeline.detect(photo)
        if not boxes:
            return JobResult(job.job_id, JobStatus.FAILED, report=face_report, user_message=NO_FACE_IN_PHOTO)
        verdict = GateVerdict(None, boxes[0], len(boxes))  # the largest face, and how many were seen
        return job, photo, face_report.with_timings(timings), verdict

    def _judge(self, image: np.ndarray) -> GateVerdict | None:
        """The gate's verdict on a painted image (``None`` when there is no gate: PRNet's crop rules decide)."""
        if self.gate is None or self.crop != "detect":
            return None
        return judge(image.shape, self.pipeline.detect(image), self.gate)

    def _unusable(
        self,
        job: JobRequest,
        reason: GateReason,
        image: np.ndarray | None,
        face_report: FaceReport,
        withheld: str | None = None,
    ) -> JobResult | Repaint:
        """Paint the job again with the next seed while it may, else tell the member why (with the image)."""
        tries = len(job.seeds_tried) + 1
        if job.repaints_left > 0:
            seed = (job.face.seed + 1) % (SEED.high + 1)  # the next seed: a repainted face stays reproducible
            again = dataclasses.replace(
                job,
                face=dataclasses.replace(job.face, seed=seed),
                repaints_left=job.repaints_left - 1,
                seeds_tried=(*job.seeds_tried, job.face.seed),
            )
            return Repaint(again, repaint_note(reason, tries))
        if image is None:
            message = withheld or final_message(reason, tries)
            return JobResult(job.job_id, JobStatus.WITHHELD, report=face_report, user_message=message)
        return JobResult(
            job.job_id,
            JobStatus.FAILED,
            files={IMAGE_FILE: png_bytes(image)},
            report=face_report,
            user_message=final_message(reason, tries),
        )

    def _one_by_one(
        self,
        jobs: Sequence[JobRequest],
        report: Callable[[JobProgress], None],
        cancelled: Callable[[str], bool],
        error: Exception,
    ) -> list[Outcome | Pending]:
        """A batch broke: run its jobs alone, so one bad job fails by itself and the others finish."""
        if len(jobs) > 1:
            log.warning("a batch of %d failed (%s); running its jobs one by one", len(jobs), type(error).__name__)
            results: list[Outcome | Pending] = []
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
        files = result_files(face, timings, outputs=(job.output,), pool=self.export_pool, renderer=self.renderer)
        if job.is_photo:  # the member's own photo is not sent back (nor kept with the face's page)
            files.pop(IMAGE_FILE, None)
        upload_note = None
        if job.upload is not None:

            def lighter() -> dict[str, bytes]:  # only the mesh: the pictures stay as they are
                return mesh_files(decimate(face.mesh), outputs=(job.output,), pool=self.export_pool)

            files, upload_note = fit_for_upload(files, budget=job.upload, lighter=lighter)
        face_report = dataclasses.replace(finished.report.with_timings(timings), upload_note=upload_note)
        seconds = finished.seconds + time.perf_counter() - started
        return JobResult(job.job_id, JobStatus.DONE, files=files, report=face_report, seconds=seconds)

    def _reconstruct(
        self, found: list[tuple[np.ndarray, GateVerdict | None]], job_ids: list[str]
    ) -> list[FaceResult | T2FError | None]:
        """Faces (or their errors, or None after a crash) for the images, PRNet batched over them.

        An image the gate passed is cropped from the gate's box; others by ``crop``. Out of GPU memory,
        or when one image breaks PRNet, each image is tried alone before any is given up.
        """
        try:
            boxes = [None if verdict is None else (verdict.box, verdict.faces) for _, verdict in found]
            return list(self.pipeline.reconstruct_many([image for image, _ in found], crop=self.crop, boxes=boxes))
        except Exception as exc:
            if len(found) > 1:
                if is_out_of_memory(exc):
                    release_failed_call(exc)
                log.warning("reconstructing %d faces failed (%s); one at a time", len(found), type(exc).__name__)
                return [
                    face
                    for item, job_id in zip(found, job_ids, strict=True)
                    for face in self._reconstruct([item], [job_id])
                ]
            log.exception("reconstruction failed for job %s", job_ids[0])
            return [None]

    def _painting_report(self, job: JobRequest, painted: FaceImage, paint_s: float) -> FaceReport:
        stage = self.pipeline.text_to_image
        face_report = FaceReport.of_painting(
            painted,
            model=getattr(stage, "model", "unknown"),
            revision=getattr(stage, "revision", None),
            request=job.face,
            seeds_tried=job.seeds_tried,
        )
        return dataclasses.replace(face_report, timings_s={"text_to_image": round(paint_s, 4)})

    def _reconstructed(
        self,
        job: JobRequest,
        image: np.ndarray,
        face_report: FaceReport,
        face: FaceResult | T2FError | None,
        paint_s: float,
    ) -> Outcome:
        if face is None:
            return dataclasses.replace(failed(job.job_id), report=face_report)
        if isinstance(face, T2FError) and job.is_photo:  # a member's photo is never sent back
            return JobResult(job.job_id, JobStatus.FAILED, report=face_report, user_message=face.user_message)
        if isinstance(face, T2FError):  # no face, and other problems the member can act on: still show the image
            return JobResult(
                job.job_id,
                JobStatus.FAILED,
                files={IMAGE_FILE: png_bytes(image)},
                report=face_report,
                user_message=face.user_message,
                seconds=paint_s,
            )
        face_report = face_report.with_face(face, provenance(self.pipeline.prnet.config))
        finished = FinishedFace(job=job, face=face, report=face_report, seconds=paint_s)
        return finished if self.defer_exports else self.export(finished)
