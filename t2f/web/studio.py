"""The ``t2f serve`` page: one machine, no Discord. A prompt box, live progress, then the face.

The browser posts a request to ``/api/faces`` (a JSON object: :mod:`t2f.web.api`); the same admission
as the bot judges it (the prompt filter on prompt and negative prompt, then
:class:`~t2f.serve.policy.Policy` with the visitor as the member and no server: :mod:`t2f.web.visitors`);
the job goes to the same :class:`~t2f.serve.service.JobService`. All web visitors together may have at
most ``web_pending`` faces on the way (``T2F_WEB_PENDING``), so members sharing the GPU are never starved
by the page. Progress (queue place, denoising steps, TAESD previews) streams back as Server-Sent Events
from ``/api/faces/<job_id>/events``; the last event names the face's signed page, whose files the page shows.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import math
import time
from collections import OrderedDict
from typing import Any

import numpy as np
from aiohttp import web
from PIL import Image

from t2f.bounds import MEMBER_NEGATIVE_CHARS, MEMBER_PROMPT_CHARS, MEMBER_STEPS
from t2f.errors import InvalidRequest, T2FError
from t2f.faces import FaceRequest
from t2f.files.outputs import IMAGE_FILE, jpeg_bytes, png_bytes
from t2f.serve.jobs import JobProgress, JobRequest, JobResult, JobStatus, QueueFull, new_job_id
from t2f.serve.moderation import PromptRejected
from t2f.serve.policy import Policy, Refused
from t2f.serve.queue import JobHandle
from t2f.serve.records import job_record
from t2f.serve.requests import RequestDefaults
from t2f.serve.service import JobService
from t2f.serve.store import Store
from t2f.web.access import visitor_of
from t2f.web.api import BODY_TIMEOUT_S, Refusal, read_json_object
from t2f.web.html import studio_page
from t2f.web.pages import FacePages

log = logging.getLogger(__name__)
POLL_S = 0.2  # how often an event stream looks at its job (cheap: no I/O unless something changed)
KEEP_FINISHED = 1000  # final states remembered for reconnecting pages (a few hundred bytes; 20 KB with an image)
LAST_IMAGE_PX = 384  # a failed job's last image, kept in its final state as a JPEG of about 20 KB
WEB_PENDING = 10  # T2F_WEB_PENDING: faces all web visitors together may have on the way


def last_image_url(png: bytes) -> str:
    """A ``data:`` URL of a small JPEG of the PNG ``png``: what a failed job's page shows under the reason."""
    picture = Image.open(io.BytesIO(png)).convert("RGB")
    picture.thumbnail((LAST_IMAGE_PX, LAST_IMAGE_PX), Image.Resampling.BILINEAR)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(np.asarray(picture), quality=85)).decode("ascii")


def client_member_id(visitor: str) -> int:
    """A stable member id for a visitor (:func:`~t2f.web.access.visitor_of`): 56 bits of its sha256 (fits
    SQLite's signed 64-bit integers)."""
    return int.from_bytes(hashlib.sha256(visitor.encode("utf-8")).digest()[:7], "big")


def _text(body: dict[str, Any], name: str, limit: int) -> str:
    value = body.get(name) or ""
    if not isinstance(value, str):
        raise InvalidRequest(f"The {name.replace('_', ' ')} must be text.")
    if len(value) > limit:
        raise InvalidRequest(f"The {name.replace('_', ' ')} is longer than {limit} characters.")
    return value


def _whole(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"The {name} must be a whole number.")
    return value


class Studio:
    """The routes of the ``t2f serve`` page, around a running service, store, policy and pages."""

    def __init__(
        self,
        *,
        service: JobService,
        store: Store,
        policy: Policy,
        pages: FacePages,
        defaults: RequestDefaults,
        web_pending: int = WEB_PENDING,
        body_timeout_s: float = BODY_TIMEOUT_S,
    ) -> None:
        self.service = service
        self.store = store
        self.policy = policy
        self.pages = pages
        self.defaults = defaults
        self.web_pending = web_pending
        self.body_timeout_s = body_timeout_s
        self._admitting = 0  # requests between the cap's check and their handle (admission awaits the store)
        self._handles: dict[str, JobHandle] = {}
        self._final: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()  # job -> (member, state)
        self._followers: set[asyncio.Task[None]] = set()
        self._previews: dict[str, tuple[JobProgress, str]] = {}  # job -> (progress, its preview as a data URL)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.page),
            web.post("/api/faces", self.submit),
            web.get("/api/faces/{job_id:[0-9a-f]{12}}/events", self.events),
        ]

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=studio_page(steps=self.defaults.steps), content_type="text/html")

    # -- submitting ----------------------------------------------------------------------------------
    def _face_request(self, body: dict[str, Any]) -> FaceRequest:
        """The request the page's form describes, or :class:`InvalidRequest` with what is wrong."""
        prompt = _text(body, "prompt", MEMBER_PROMPT_CHARS.high).strip()
        if len(prompt) < MEMBER_PROMPT_CHARS.low:
            raise InvalidRequest(f"The prompt needs at least {MEMBER_PROMPT_CHARS.low} characters.")
        negative = _text(body, "negative_prompt", MEMBER_NEGATIVE_CHARS.high).strip()
        seed = _whole(body, "seed")
        steps = _whole(body, "steps")
        if steps is not None:  # a member's own number is checked against a member's range, 0 included
            MEMBER_STEPS.check(steps, "Steps")
        return self.defaults.request(prompt, negative_prompt=negative, seed=seed, steps=steps)

    async def _queue(self, face: FaceRequest, member_id: int, *, chosen_seed: bool) -> JobHandle:
        """The bot's admission for a page request (the one place that calls the policy), then the queue.

        Raises :class:`~t2f.serve.policy.Refused`, :class:`~t2f.serve.moderation.PromptRejected`,
        :class:`~t2f.serve.jobs.QueueFull` or :class:`~t2f.serve.store.StoreUnavailable`.
        """
        admission = await self.policy.admit(guild_id=None, channel_id=None, user_id=member_id, request=face)
        job = JobRequest(
            job_id=new_job_id(),
            user_id=member_id,
            face=face,
            output="glb",
            repaints_left=self.defaults.repaints(seed=face.seed if chosen_seed else None),
        )
        return await self.policy.enqueue(admission, job, job_record(job, created_at=time.time()))

    async def submit(self, request: web.Request) -> web.Response:
        try:
            body = await read_json_object(request, timeout_s=self.body_timeout_s)
            handle = await self._admit(body, client_member_id(visitor_of(request)))
        except Refusal as refusal:
            return refusal.response()
        job_id = handle.job.job_id
        self._handles[job_id] = handle
        task = asyncio.get_running_loop().create_task(self._record(handle))
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)
        return web.json_response({"job_id": job_id})

    async def _admit(self, body: dict[str, Any], member_id: int) -> JobHandle:
        """The request, the web visitors' share of the queue, then the bot's admission.

        Every refusal is a :class:`~t2f.web.api.Refusal` with its HTTP status.
        """
        try:
            face = self._face_request(body)
        except InvalidRequest as refusal:
            raise Refusal(400, refusal.user_message) from None
        on_the_way = len(self._handles) + self._admitting
        if on_the_way >= self.web_pending:
            raise Refusal(
                503,
                f"The web page has {on_the_way} faces on the way, its most; please try again in a minute.",
                retry_after_s=self._wait_s(),
            )
        self._admitting += 1
        try:
            return await self._queue(face, member_id, chosen_seed=body.get("seed") is not None)
        except QueueFull as refusal:
            raise Refusal(503, refusal.user_message, retry_after_s=self._wait_s()) from None
        except InvalidRequest as refusal:
            raise Refusal(400, refusal.user_message) from None
        except PromptRejected as refusal:
            raise Refusal(403, refusal.user_message) from None
        except Refused as refusal:  # the policy's: cooldown, pending faces, daily quota, full queue
            raise Refusal(429, refusal.user_message, retry_after_s=refusal.retry_after_s or self._wait_s()) from None
        except T2FError as refusal:  # the store is unavailable
            raise Refusal(503, refusal.user_message, retry_after_s=self._wait_s()) from None
        finally:
            self._admitting -= 1

    def _wait_s(self) -> float:
        """Roughly when a place frees up: the queue's estimated wait, between 1 s and an hour."""
        return min(3600.0, max(1.0, math.ceil(self.service.eta_seconds(max(1, len(self.service.queued()))))))

    async def _record(self, handle: JobHandle) -> None:
        """When the job ends: remember its final state for the page, drop its bytes, record it in the store."""
        job_id = handle.job.job_id
        result = await handle.result
        path = await asyncio.to_thread(self.pages.path, job_id) if result.status == JobStatus.DONE else None
        state = self._final_state(result, path)
        if state["state"] == "failed" and IMAGE_FILE in result.files:  # painted, but no usable face in any try
            state["image"] = await asyncio.to_thread(last_image_url, result.files[IMAGE_FILE])
        self._final[job_id] = (handle.job.user_id, state)
        while len(self._final) > KEEP_FINISHED:
            self._final.popitem(last=False)
        self._handles.pop(job_id, None)
        self._previews.pop(job_id, None)
        await self.store.finish_job(
            job_id, status=result.status, outcome=result.user_message or "ok", report=result.report
        )

    @staticmethod
    def _final_state(result: JobResult, path: str | None) -> dict[str, Any]:
        if result.status == JobStatus.DONE and path is not None:
            return {"state": "done", "page": path}
        message = result.user_message or "This face could not be made."
        return {"state": "failed", "message": f"{message} (job {result.job_id})"}

    # -- following -----------------------------------------------------------------------------------
    async def _state(self, job_id: str) -> dict[str, Any] | None:
        if job_id in self._final:
            return self._final[job_id][1]
        handle = self._handles.get(job_id)
        if handle is None:
            return None
        latest = handle.latest
        if not handle.started or latest is None:
            position = self.service.position(job_id)
            return {"state": "queued", "position": position, "eta_s": round(self.service.eta_seconds(position), 1)}
        state: dict[str, Any] = {
            "state": "running",
            "phase": str(latest.phase),
            "step": latest.step,
            "total": latest.total,
            "preview": None,
        }
        if latest.preview is not None:
            cached = self._previews.get(job_id)
            if cached is None or cached[0] is not latest:
                data = await asyncio.to_thread(png_bytes, latest.preview)
                cached = (latest, "data:image/png;base64," + base64.b64encode(data).decode("ascii"))
                self._previews[job_id] = cached
            state["preview"] = cached[1]
        return state

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: one JSON object each time the job's state changes, until it ends."""
        job_id = request.match_info["job_id"]
        handle = self._handles.get(job_id)
        owner = handle.job.user_id if handle is not None else self._final.get(job_id, (None, {}))[0]
        if owner is None or owner != client_member_id(visitor_of(request)):  # only its visitor may follow it
            raise web.HTTPNotFound()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        shown = None
        stop_watching = handle.watch_previews() if handle is not None else None  # this page shows its previews
        try:
            while (state := await self._state(job_id)) is not None:
                text = json.dumps(state)
                if text != shown:
                    await response.write(f"data: {text}\n\n".encode())
                    shown = text
                if state["state"] in ("done", "failed"):
                    break
                await asyncio.sleep(POLL_S)
        finally:
            if stop_watching is not None:
                stop_watching()
        return response

    async def close(self) -> None:
        """Let the store record the jobs that already ended."""
        if self._followers:
            await asyncio.wait(self._followers, timeout=5)
