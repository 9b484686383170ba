"""The faces stage: one job's image judged and turned into a face, off the GPU thread.

In order: the safety checker (a painted image, or a member's photo), the face gate (one face, big and
frontal enough, from the detector's boxes) or, for a photo, the largest detected face, then PRNet and
the mesh. An image without a usable face is painted again with the next seed while the job may; a
member's photo never is, and is never sent back.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from t2f.bounds import SEED
from t2f.errors import T2FError, is_out_of_memory, release_failed_call
from t2f.faces import FaceBox, FaceResult
from t2f.files.outputs import IMAGE_FILE, png_bytes
from t2f.report import FaceReport
from t2f.serve.jobs import CANCELLED, FaceJob, JobPhase, JobProgress, JobRequest, JobResult, JobStatus, Outcome, failed
from t2f.serve.route import Watch
from t2f.stages.gate import GateLimits, GateReason, GateVerdict, final_message, judge, repaint_note
from t2f.stages.pipeline import FacePipeline
from t2f.stages.prnet.checkpoint import provenance
from t2f.stages.text2img import WITHHELD_BY_SAFETY
from t2f.timing import timed

log = logging.getLogger(__name__)
NO_FACE_IN_PHOTO = (
    "No face found in that picture. A clear, frontal-ish photo of one person works best: the whole face "
    "visible, in good light, not too small or far away."
)
PHOTO_FLAGGED = "The safety filter flagged that image, so it cannot be used."


class FaceFinder:
    """Image -> face for one job at a time (:class:`~t2f.serve.route.FacesStage`).

    Parameters
    ----------
    pipeline : the :class:`FacePipeline` (PRNet, UV data, detector); its ``text_to_image`` stage, when
        there is one, is the safety checker's owner (``check_image``).
    crop : "detect" (MTCNN) or "whole".
    gate : what a usable face is (one, big enough, frontal enough); images that fail are repainted with the
        next seed while the job has repaints left. Needs ``crop="detect"``; ``None``: any face is used.
    """

    def __init__(self, pipeline: FacePipeline, *, crop: str = "detect", gate: GateLimits | None = None) -> None:
        self.pipeline = pipeline
        self.crop = crop
        self.gate = gate

    def find(self, job: FaceJob, watch: Watch) -> Outcome:
        """The job with its face, the job again with its next seed, or its final result."""
        if watch.cancelled(job.job_id):
            return JobResult(job.job_id, JobStatus.CANCELLED, user_message=CANCELLED)
        watch.report(JobProgress(job.job_id, JobPhase.RECONSTRUCTING, note=job.repaint_note))
        started = time.perf_counter()
        image = job.image
        assert image is not None, "the faces stage needs an image"
        timings: dict[str, float] = {}
        with timed(timings, "safety_check"):
            nsfw = self._safety_verdict(job, image)
        report = dataclasses.replace(job.report or FaceReport(), nsfw=nsfw).with_timings(timings)
        job = dataclasses.replace(job, report=report)
        verdict = self._photo_face(job, image, nsfw) if job.request.is_photo else self._verdict(image, nsfw)
        if isinstance(verdict, JobResult):
            return verdict
        if verdict is not None and not verdict.passed:
            assert verdict.reason is not None
            return self._unusable(job, verdict.reason, None if verdict.reason == GateReason.FLAGGED else image)
        face = self._reconstruct(job, image, verdict)
        seconds = job.seconds + time.perf_counter() - started
        if isinstance(face, JobResult):
            return dataclasses.replace(face, seconds=seconds)
        report = report.with_face(face, provenance(self.pipeline.prnet.config))
        return dataclasses.replace(job, face=face, report=report, seconds=seconds)

    def warm_up(self, image: np.ndarray) -> None:
        """Run the detector (its first call builds its graphs) and PRNet once on ``image``, face or not."""
        if self.crop != "whole":
            self.pipeline.reconstruct_many([image], crop=self.crop)
        self.pipeline.reconstruct_many([image], crop="whole")

    # -- the steps of find, in order ---------------------------------------------------------------
    def _safety_verdict(self, job: FaceJob, image: np.ndarray) -> bool | None:
        """Whether the safety checker flags the image: the painter's verdict when it gave one, else the
        checker's own; ``None`` when there is no checker (``T2F_SAFETY_CHECKER=off``)."""
        if job.painting is not None and job.painting.nsfw is not None:
            return job.painting.nsfw
        stage = self.pipeline.text_to_image
        return None if stage is None else stage.check_image(image)

    def _photo_face(self, job: FaceJob, image: np.ndarray, nsfw: bool | None) -> GateVerdict | JobResult:
        """A photo's face: refused when flagged, else the largest detected face (no whole-image fallback)."""
        if nsfw:
            return JobResult(job.job_id, JobStatus.WITHHELD, report=job.report, user_message=PHOTO_FLAGGED)
        boxes = self.pipeline.detect(image)
        if not boxes:
            return JobResult(job.job_id, JobStatus.FAILED, report=job.report, user_message=NO_FACE_IN_PHOTO)
        return GateVerdict(None, boxes[0], len(boxes))  # the largest face, and how many were seen

    def _verdict(self, image: np.ndarray, nsfw: bool | None) -> GateVerdict | None:
        """The gate's verdict on a painted image; ``None`` without a gate (PRNet's crop rules decide)."""
        if nsfw:
            return GateVerdict(GateReason.FLAGGED, None, 0)
        if self.gate is None or self.crop != "detect":
            return None
        return judge(image.shape, self.pipeline.detect(image), self.gate)

    def _unusable(self, job: FaceJob, reason: GateReason, image: np.ndarray | None) -> Outcome:
        """Paint the job again with the next seed while it may, else tell the member why (with the image,
        unless it was flagged)."""
        request = job.request
        tries = len(request.seeds_tried) + 1
        if request.repaints_left > 0:
            return FaceJob(request=next_seed(request), repaint_note=repaint_note(reason, tries))
        if image is None:  # flagged: the image is withheld
            return JobResult(job.job_id, JobStatus.WITHHELD, report=job.report, user_message=WITHHELD_BY_SAFETY)
        message = final_message(reason, tries)
        files = {IMAGE_FILE: png_bytes(image)}
        return JobResult(job.job_id, JobStatus.FAILED, files=files, report=job.report, user_message=message)

    def _reconstruct(self, job: FaceJob, image: np.ndarray, verdict: GateVerdict | None) -> FaceResult | JobResult:
        """PRNet and the mesh from the gate's box (else by ``crop``); a face the member can act on
        (no face, too small) is told with the painted image, never with their photo."""
        boxes: list[tuple[FaceBox | None, int] | None] | None = (
            None if verdict is None else [(verdict.box, verdict.faces)]
        )
        try:
            (face,) = self.pipeline.reconstruct_many([image], crop=self.crop, boxes=boxes)
        except Exception as exc:
            if is_out_of_memory(exc):
                release_failed_call(exc)
            log.error("reconstruction failed for job %s", job.job_id, exc_info=exc)
            return dataclasses.replace(failed(job.job_id), report=job.report)
        if isinstance(face, T2FError):
            files = {} if job.request.is_photo else {IMAGE_FILE: png_bytes(image)}
            return JobResult(
                job.job_id, JobStatus.FAILED, files=files, report=job.report, user_message=face.user_message
            )
        return face


def next_seed(request: JobRequest) -> JobRequest:
    """The job with the next seed (a repainted face stays reproducible) and one repaint fewer."""
    seed = (request.face.seed + 1) % (SEED.high + 1)
    return dataclasses.replace(
        request,
        face=dataclasses.replace(request.face, seed=seed),
        repaints_left=request.repaints_left - 1,
        seeds_tried=(*request.seeds_tried, request.face.seed),
    )
