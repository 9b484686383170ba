"""A ``t2f serve`` studio on loopback whose GPU never finishes, for tests that send it hostile requests.

The backend holds every batch until the test ends, so accepted faces stay on the way and the limits
(per visitor, for all web visitors, the queue) can be watched filling up. Everything is torn down by
the context manager: queued jobs cancelled, the held batch let go, the server, service and store closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from t2f.serve.jobs import FaceJob, JobRequest, JobResult, JobStatus, Outcome
from t2f.serve.moderation import PromptFilter
from t2f.serve.policy import Limits, Policy
from t2f.serve.requests import RequestDefaults
from t2f.serve.route import Route, Watch
from t2f.serve.service import JobService
from t2f.serve.store import Store
from t2f.web.access import LOOPBACK_ONLY, WebAccess
from t2f.web.connections import DEFAULT_LIMITS, ConnectionLimits, WebServer
from t2f.web.links import LinkSigner
from t2f.web.pages import FacePages
from t2f.web.server import web_app
from t2f.web.studio import Studio

FACE = {"prompt": "a portrait photo of a smiling woman", "steps": 20}


class HeldBackend:
    """A painter whose batches wait until :attr:`release` is set, then end cancelled."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.requests: list[JobRequest] = []  # every job a batch was given

    def paint(self, jobs: Sequence[FaceJob], watch: Watch) -> list[Outcome]:
        self.requests += [job.request for job in jobs]
        self.release.wait(60)
        return [JobResult(job.job_id, JobStatus.CANCELLED, user_message="Cancelled.") for job in jobs]

    def write(self, job: FaceJob) -> JobResult:
        raise AssertionError("a held batch never finishes a face")

    def route(self) -> Route:
        return Route(paint=self, faces=None, files=self)


@dataclass
class RunningStudio:
    server: WebServer
    service: JobService
    studio: Studio
    policy: Policy
    backend: HeldBackend

    @property
    def url(self) -> str:
        return self.server.url


@contextlib.asynccontextmanager
async def running_studio(
    tmp_path: Path,
    *,
    access: WebAccess = LOOPBACK_ONLY,
    limits: ConnectionLimits = DEFAULT_LIMITS,
    web_pending: int = 10,
    user_pending: int = 1,
    cooldown_s: float = 0.0,
    body_timeout_s: float = 30.0,
) -> AsyncIterator[RunningStudio]:
    backend = HeldBackend()
    service = JobService(backend.route(), capacity=50)
    store = await Store.open(tmp_path / "t2f.sqlite3")
    policy = Policy(
        store=store,
        service=service,
        prompt_filter=PromptFilter.from_file(None),
        limits=Limits(cooldown_s=cooldown_s, daily_quota=100, user_pending=user_pending, queue_capacity=50),
    )
    pages = FacePages(tmp_path / "out", LinkSigner(b"secret"), keep_s=86400.0)
    studio = Studio(
        service=service,
        store=store,
        policy=policy,
        pages=pages,
        defaults=RequestDefaults(steps=25, max_repaints=0),
        web_pending=web_pending,
        body_timeout_s=body_timeout_s,
    )
    app = web_app(
        pages=pages, viewer_script=None, health=lambda: (True, "ok"), access=access, extra_routes=studio.routes()
    )
    server = WebServer(app, host="127.0.0.1", port=0, limits=limits)
    await server.start()
    try:
        yield RunningStudio(server, service, studio, policy, backend)
    finally:
        for handle in service.queued():
            service.cancel(handle.job.job_id)
        backend.release.set()
        await service.shutdown(timeout_s=10)
        await studio.close()
        await server.stop()
        await store.close()


async def post_face(
    url: str, body: object = FACE, *, headers: Mapping[str, str] | None = None, raw: bytes | None = None
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    """POST to ``/api/faces`` as JSON (or ``raw`` bytes): status, the JSON answer (``{"text": …}`` when the
    answer is no JSON), headers."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session, session.post(url + "/api/faces", data=data, headers=sent) as answer:
        text = await answer.text()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = {"text": text}
        return answer.status, parsed, answer.headers


async def raw_exchange(port: int, request: bytes, *, wait_s: float = 30.0) -> bytes:
    """Send ``request`` bytes on a new connection and read until the server closes it (at most ``wait_s``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), wait_s)
    finally:
        writer.close()
