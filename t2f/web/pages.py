"""A face's page files on disk, keyed by job id: ``<T2F_OUTPUT_DIR>/<job_id>/``.

:class:`FacePages` saves a finished face's files and report, answers which file a signed link may
serve, removes a face at once (Delete) and prunes faces older than ``T2F_KEEP_DAYS``.
:class:`PageKeepingFiles` wraps the route's files stage so every finished face's page files are written
on its files thread, never on the event loop: the full mesh in every format (OBJ, textured OBJ as a zip,
GLB), whatever the chat's upload budget made of the delivered files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2f.export.glb import glb_bytes
from t2f.export.obj import obj_bytes, photo_obj_files, textured_obj_files
from t2f.faces import FaceResult
from t2f.files.outputs import IMAGE_FILE, PREVIEW_FILE, TURNTABLE_FILE, json_bytes, write_files
from t2f.files.weights import is_local_reference
from t2f.report import FaceReport
from t2f.serve.jobs import FaceJob, JobResult, JobStatus
from t2f.serve.route import FilesStage
from t2f.serve.uploads import zip_bytes
from t2f.web.html import public_model_name
from t2f.web.links import JOB_ID, LinkSigner

log = logging.getLogger(__name__)
REPORT_FILE = "metadata.json"  # written last: a folder without it is not (yet) a page
OBJ_FILE, GLB_FILE, TEXTURED_ZIP = "face.obj", "face.glb", "face_textured.zip"
# The only names a link can fetch; anything else (``..``, the secret, other files) is a 404.
SERVED = {
    IMAGE_FILE: "image/png",
    PREVIEW_FILE: "image/jpeg",
    TURNTABLE_FILE: "image/gif",
    GLB_FILE: "model/gltf-binary",
    OBJ_FILE: "model/obj",
    TEXTURED_ZIP: "application/zip",
    REPORT_FILE: "application/json",
}
DOWNLOADS = (OBJ_FILE, TEXTURED_ZIP, GLB_FILE)


def served_model_name(model: str | None) -> str | None:
    """The model as a page names it: a hub id as it is, a local folder by its own name (never its path)."""
    if model is None or not is_local_reference(model):
        return public_model_name(model)
    return Path(model).expanduser().name or public_model_name(model)


def page_files(face: FaceResult, delivered: Mapping[str, bytes], *, untouched: bool) -> dict[str, bytes]:
    """The files a face's page serves: the pictures as delivered (the turntable stands in for the 3D view
    where a browser has no WebGL) and the mesh in every format, the photo-space OBJ in the zip.

    Parameters
    ----------
    face : the reconstructed face (its full mesh).
    delivered : the files the job's result carries (one mesh format, maybe zipped or simplified).
    untouched : the delivered mesh files are the full mesh (no upload note), so they are reused as they are.
    """
    files = {name: data for name, data in delivered.items() if name in (IMAGE_FILE, PREVIEW_FILE, TURNTABLE_FILE)}
    reuse = delivered if untouched else {}
    files[OBJ_FILE] = reuse.get(OBJ_FILE) or obj_bytes(face.mesh)
    files[GLB_FILE] = reuse.get(GLB_FILE) or glb_bytes(face.mesh)
    textured = {name: data for name, data in reuse.items() if name.startswith("face_textured.")}
    textured = textured or textured_obj_files(face.mesh, stem="face_textured")
    # The zip also holds the mesh where the photo saw it (the OBJ and GLB face the viewer).
    files[TEXTURED_ZIP] = zip_bytes({**textured, **photo_obj_files(face.mesh, stem="face_textured")})
    return files


@dataclass(frozen=True)
class FacePages:
    """Faces' page folders under ``root``, their signed links and their lifetime.

    Parameters
    ----------
    root : the output folder (``T2F_OUTPUT_DIR``); each face is ``root/<job_id>/``.
    signer : signs the links.
    keep_s : seconds a face (its files and its link) lives after it was saved.
    public_url : the address members reach (``T2F_PUBLIC_URL``), without a trailing slash; empty: no links in chat.
    clock : Unix time in seconds (a parameter so tests can move time).
    """

    root: Path
    signer: LinkSigner
    keep_s: float
    public_url: str = ""
    clock: Callable[[], float] = field(default=time.time)

    def folder(self, job_id: str) -> Path:
        if not JOB_ID.fullmatch(job_id):  # never a path built from anything but 12 hex digits
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    # -- writing (worker threads) --------------------------------------------------------------------
    def save(self, job_id: str, files: Mapping[str, bytes], report: FaceReport | None) -> None:
        """Write a face's files, then its report (which makes the page exist). Blocking: call off the loop."""
        folder = self.folder(job_id)
        kept = {name: data for name, data in files.items() if name in SERVED and name != REPORT_FILE}
        write_files(folder, kept)
        # The page picks its pictures from what was saved (faces saved before the turntable have none).
        document: dict[str, Any] = {"job_id": job_id, "saved_at": round(self.clock(), 3), "files": sorted(kept)}
        document.update(report.to_json() if report is not None else {})
        if isinstance(document.get("model"), dict):  # served to anyone with the link: no folder of this server
            document["model"] = {**document["model"], "id": served_model_name(document["model"].get("id"))}
        write_files(folder, {REPORT_FILE: json_bytes(document)})

    def remove_face(self, job_id: str) -> bool:
        """Delete a face's files (and so its page) now; False when there was none. Blocking."""
        folder = self.folder(job_id)
        if not folder.is_dir():
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True

    async def remove(self, job_id: str) -> bool:
        """:meth:`remove_face` off the event loop (the Delete button and moderators call this)."""
        return await asyncio.to_thread(self.remove_face, job_id)

    def prune(self) -> list[str]:
        """Remove every face saved more than ``keep_s`` ago; returns their job ids. Blocking."""
        if not self.root.is_dir():
            return []
        removed = []
        for folder in self.root.iterdir():
            saved = self.saved_at(folder.name) if JOB_ID.fullmatch(folder.name) else None
            if saved is not None and saved + self.keep_s <= self.clock():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed

    # -- reading -------------------------------------------------------------------------------------
    def report(self, job_id: str) -> dict[str, Any] | None:
        """The saved report of a face, or None when it has no page. Blocking (a small file)."""
        try:
            data = json.loads((self.folder(job_id) / REPORT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def saved_at(self, job_id: str) -> float | None:
        data = self.report(job_id)
        return None if data is None else float(data.get("saved_at", 0.0))

    def expires(self, job_id: str) -> int | None:
        """When the face's link stops working (Unix seconds), or None when it has no page."""
        saved = self.saved_at(job_id)
        return None if saved is None else int(saved + self.keep_s)

    def path(self, job_id: str) -> str | None:
        """The face's signed page path (``/f/…/``), or None when it has no page."""
        expires = self.expires(job_id)
        return None if expires is None else self.signer.path(job_id, expires)

    def public_link(self, job_id: str) -> str | None:
        """The address a member opens ("View in 3D"), or None without a public URL or a page."""
        if not self.public_url:
            return None
        path = self.path(job_id)
        return None if path is None else self.public_url + path

    def file(self, job_id: str, name: str) -> Path | None:
        """The file a valid link may serve, or None (unknown name, no page, or deleted)."""
        if name not in SERVED:
            return None
        path = self.folder(job_id) / name
        return path if path.is_file() and (self.folder(job_id) / REPORT_FILE).is_file() else None


class PageKeepingFiles:
    """The route's files stage, plus each finished face's page (:class:`~t2f.serve.route.FilesStage`)."""

    def __init__(self, inner: FilesStage, pages: FacePages) -> None:
        self.inner = inner
        self.pages = pages

    def write(self, job: FaceJob) -> JobResult:
        result = self.inner.write(job)
        if result.status == JobStatus.DONE and job.face is not None:
            untouched = result.report is None or result.report.upload_note is None
            try:
                self.pages.save(result.job_id, page_files(job.face, result.files, untouched=untouched), result.report)
            except OSError:  # a full disk costs the page, not the delivery
                log.exception("saving the page of job %s failed", result.job_id)
        return result


def open_pages(*, output_dir: Path, cache_dir: Path, secret: str, keep_days: int, public_url: str) -> FacePages:
    """The face pages as the settings describe them (``T2F_OUTPUT_DIR``, ``T2F_WEB_SECRET``, ``T2F_KEEP_DAYS``,
    ``T2F_PUBLIC_URL``); a missing secret is generated into ``<cache_dir>/web/secret``. Blocking (small files)."""
    from t2f.web.links import load_secret

    signer = LinkSigner(load_secret(secret, cache_dir / "web" / "secret"))
    return FacePages(output_dir, signer, keep_s=keep_days * 86400.0, public_url=public_url.rstrip("/"))
