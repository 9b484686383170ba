"""Finished results kept on disk until their delivery is recorded, so a restart re-sends instead of repainting.

A job's result is written here before its message is sent, and dropped once the store says it was
delivered. A restart that finds a job still here knows it was painted (and maybe sent): it looks for the
message and re-sends these bytes when there is none, and never paints that job again. The files are the
member's face, so they stay only as long as that: a job's folder goes the moment its delivery is recorded.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from t2f.files.outputs import write_atomic, write_files
from t2f.report import FaceReport
from t2f.serve.jobs import JobResult, JobStatus

log = logging.getLogger(__name__)
RESULT_FILE = "result.json"  # written last: a folder without it holds no usable result
FILES = "files"


class SavedResults:
    """Results by job id under ``root`` (``<root>/<job_id>/result.json`` and its files). Blocking: call these
    off the event loop."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, result: JobResult) -> bool:
        """Keep ``result`` until :meth:`drop`; ``False`` (and a log line) when the disk refused it."""
        folder = self.root / result.job_id
        try:
            write_files(folder / FILES, result.files)
            data = {
                "job_id": result.job_id,
                "status": str(result.status),
                "user_message": result.user_message,
                "seconds": result.seconds,
                "files": list(result.files),
                "report": None if result.report is None else result.report.to_json(),
            }
            write_atomic(folder / RESULT_FILE, json.dumps(data).encode("utf-8"))
            return True
        except OSError as exc:
            log.error("could not keep the result of job %s for a re-send after a restart (%s)", result.job_id, exc)
            return False

    def load(self, job_id: str) -> JobResult | None:
        """The kept result, or ``None`` when there is none (or it is incomplete)."""
        folder = self.root / job_id
        try:
            data = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
            files = {name: (folder / FILES / name).read_bytes() for name in data["files"]}
            report = None if data["report"] is None else FaceReport.from_json(data["report"])
            return JobResult(
                job_id,
                JobStatus(data["status"]),
                files=files,
                report=report,
                user_message=data["user_message"],
                seconds=float(data["seconds"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def drop(self, job_id: str) -> None:
        """Forget the job's result (its delivery is recorded)."""
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def job_ids(self) -> list[str]:
        """The jobs with a result kept here."""
        return sorted(p.name for p in self.root.iterdir() if (p / RESULT_FILE).is_file()) if self.root.is_dir() else []
