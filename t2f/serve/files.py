"""The files stage: one face's files, fitted to where they are delivered, on a CPU thread.

The picture, the meshes, the preview strip and the turntable; with ``parts_threads`` a face's parts
(the turntable's frames, the OBJs, GLB, PNG and preview) are made on several threads at once. A lighter
mesh is made only when the files do not fit the job's upload budget.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from t2f.export.package import mesh_files, result_files
from t2f.faces import decimate
from t2f.report import FaceReport
from t2f.serve.jobs import FaceJob, JobResult, JobStatus
from t2f.serve.uploads import fit_for_upload

if TYPE_CHECKING:
    from t2f.export.render_torch import ViewRenderer


class FileWriter:
    """A face's files (:class:`~t2f.serve.route.FilesStage`).

    Parameters
    ----------
    parts_threads : threads that make one face's parts together with the thread writing it; 1 makes them in
        turn on that thread.
    render_device : where PyTorch draws the preview and turntable (a GPU); ``None``: numpy on the CPU.
    """

    def __init__(self, *, parts_threads: int = 1, render_device: str | None = None) -> None:
        # a member alone with a fast GPU waits mostly on their files: a face's parts are made in parallel
        parallel = parts_threads > 1
        self.parts_pool = ThreadPoolExecutor(parts_threads, thread_name_prefix="t2f-files") if parallel else None
        self.render_device: str | None = None
        self.renderer: ViewRenderer | None = None
        self.draw_on(render_device)

    def draw_on(self, device: str | None) -> None:
        """Draw the previews and turntables with PyTorch on ``device`` (a GPU) from now on; ``None``: numpy."""
        self.render_device, self.renderer = device, None
        if device is not None:
            from t2f.export.render_torch import ViewRenderer  # torch only where a device asks for it

            self.renderer = ViewRenderer(device)

    def write(self, job: FaceJob) -> JobResult:
        """The face's files; a member's own photo is neither sent back nor shown in the preview strip (nor kept
        with the face's page) unless they chose ``show_photo``."""
        started = time.perf_counter()
        request, face = job.request, job.face
        assert face is not None, "the files stage needs a face"
        timings: dict[str, float] = {}
        outputs = (request.output,)
        show_image = request.show_photo or not request.is_photo
        files = result_files(
            face, timings, outputs=outputs, pool=self.parts_pool, renderer=self.renderer, show_image=show_image
        )
        upload_note = None
        if request.upload is not None:

            def lighter() -> dict[str, bytes]:  # only the mesh: the pictures stay as they are
                return mesh_files(decimate(face.mesh), outputs=outputs, pool=self.parts_pool)

            files, upload_note = fit_for_upload(files, budget=request.upload, lighter=lighter)
        report = dataclasses.replace((job.report or FaceReport()).with_timings(timings), upload_note=upload_note)
        seconds = job.seconds + time.perf_counter() - started
        return JobResult(job.job_id, JobStatus.DONE, files=files, report=report, seconds=seconds)

    def close(self) -> None:
        if self.parts_pool is not None:
            self.parts_pool.shutdown(wait=False, cancel_futures=True)
