"""The aiohttp server: face pages, ``/healthz``, the viewer script, and the studio's routes.

One server runs inside the bot (when ``T2F_WEB_PORT`` is set) or as ``t2f serve``. It listens on
loopback unless told otherwise; a reverse proxy publishes it at ``T2F_PUBLIC_URL``. Every handler that
touches the disk does it in a thread. Any refusal of a face link (forged, expired, deleted, unknown
file, path tricks) is the same 404, so a link never tells whether a face exists. Host names, origins
and visitors are judged by :class:`~t2f.web.access.WebAccess`, connections are limited by
:mod:`t2f.web.connections`, and ``/metrics`` is never served here: it has a listener of its own
(:mod:`t2f.web.metrics_listener`) that starts and stops with this app.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from t2f.web.access import LOOPBACK_ONLY, WebAccess
from t2f.web.api import MAX_BODY_BYTES
from t2f.web.connections import WebServer, answered
from t2f.web.html import NOT_FOUND, STUDIO_SCRIPT, STYLE, face_page
from t2f.web.metrics_listener import Metrics, MetricsListener
from t2f.web.pages import SERVED, FacePages
from t2f.web.viewer import VIEWER_CONTROLS_SCRIPT

__all__ = ["Health", "Metrics", "WebServer", "exposure_warning", "is_loopback", "web_app"]
log = logging.getLogger(__name__)
Health = Callable[[], tuple[bool, str]]  # (healthy, reason)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRUNE_EVERY_S = 3600.0
# model-viewer instantiates WebAssembly and uses blob: workers and URLs; its shadow DOM brings inline styles.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; "
        "connect-src 'self' data: blob:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # a signed link must not leak to other sites
    "X-Content-Type-Options": "nosniff",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str | None:
    """One line for the operator when the server is reachable from other machines, else None."""
    if is_loopback(host):
        return None
    return f"warning: the web server listens on {host}:{port}, so other machines can reach it (loopback is 127.0.0.1)."


@web.middleware
async def _hardened(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPNotFound:
        response = web.Response(status=404, text=NOT_FOUND)
    except web.HTTPMethodNotAllowed:
        response = web.Response(status=405, text="Method not allowed.\n")
    response.headers.update(SECURITY_HEADERS)
    return response


def _not_found() -> web.HTTPNotFound:
    return web.HTTPNotFound(text=NOT_FOUND)


def web_app(
    *,
    pages: FacePages | None,
    viewer_script: Path | None,
    health: Health,
    access: WebAccess = LOOPBACK_ONLY,
    metrics: MetricsListener | None = None,
    extra_routes: list[web.RouteDef] | None = None,
    prune_every_s: float = PRUNE_EVERY_S,
) -> web.Application:
    """The application: routes below, uniform 404s, security headers, and periodic pruning of old faces.

    Parameters
    ----------
    pages : the face pages, or None (no ``/f/`` routes).
    viewer_script : the installed ``<model-viewer>`` script (``t2f.web.assets``); None serves a 404 for it.
    health : answers ``GET /healthz``: 200 ``ok`` or 503 and the reason.
    access : the host names it answers, the origins that may post to it, the proxies it believes
        (default: loopback only, no public URL, no proxy).
    metrics : the ``/metrics`` listener to run while this app runs, or None; ``/metrics`` here is a 404.
    extra_routes : more routes (the studio's, for ``t2f serve``).
    """
    app = web.Application(middlewares=[_hardened, answered, access.middleware()], client_max_size=MAX_BODY_BYTES)

    async def healthz(request: web.Request) -> web.Response:
        healthy, reason = health()
        return web.Response(status=200 if healthy else 503, text=f"{reason}\n", headers={"Cache-Control": "no-store"})

    async def viewer(request: web.Request) -> web.StreamResponse:
        if viewer_script is None or not viewer_script.is_file():
            raise _not_found()
        response = web.FileResponse(viewer_script, headers={"Content-Type": "text/javascript; charset=utf-8"})
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    def text_asset(body: str, content_type: str) -> Handler:
        async def serve(request: web.Request) -> web.Response:
            return web.Response(text=body, content_type=content_type, headers={"Cache-Control": "no-cache"})

        return serve

    def checked(request: web.Request) -> tuple[FacePages, str]:
        """The pages and the job id of a valid, unexpired link; a 404 for anything else."""
        info = request.match_info
        if pages is None or not pages.signer.valid(info["job_id"], info["expires"], info["sig"], now=pages.clock()):
            raise _not_found()
        return pages, info["job_id"]

    async def face(request: web.Request) -> web.Response:
        face_pages, job_id = checked(request)
        data = await asyncio.to_thread(face_pages.report, job_id)
        if data is None:
            raise _not_found()
        body = face_page(data, expires=int(request.match_info["expires"]))
        return web.Response(text=body, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def face_file(request: web.Request) -> web.StreamResponse:
        face_pages, job_id = checked(request)
        name = request.match_info["name"]
        path = await asyncio.to_thread(face_pages.file, job_id, name)
        if path is None:
            raise _not_found()
        headers = {"Content-Type": SERVED[name], "Cache-Control": "no-store"}
        if name.startswith("face"):
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return web.FileResponse(path, headers=headers)

    link = r"/f/{job_id:[0-9a-f]{12}}/{expires:[0-9]{1,12}}/{sig:[A-Za-z0-9_-]{32}}"
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/assets/model-viewer.min.js", viewer),
            web.get("/assets/t2f.css", text_asset(STYLE, "text/css")),
            web.get("/assets/studio.js", text_asset(STUDIO_SCRIPT, "text/javascript")),
            web.get("/assets/viewer.js", text_asset(VIEWER_CONTROLS_SCRIPT, "text/javascript")),
            web.get(link + "/", face),
            web.get(link + r"/{name:[A-Za-z0-9_.-]{1,40}}", face_file),
            *(extra_routes or []),
        ]
    )
    if pages is not None:
        app.cleanup_ctx.append(_pruning(pages, prune_every_s))
    if metrics is not None:
        app.cleanup_ctx.append(metrics.context)
    return app


def _pruning(pages: FacePages, every_s: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """A background task (while the app runs) that removes faces older than their lifetime."""

    async def prune_forever() -> None:
        while True:
            try:
                removed = await asyncio.to_thread(pages.prune)
            except OSError:
                log.exception("pruning old faces failed")
            else:
                if removed:
                    log.info("pruned %d faces older than %.0f days", len(removed), pages.keep_s / 86400)
            await asyncio.sleep(every_s)

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(prune_forever(), name="t2f-prune")
        yield
        task.cancel()

    return context
