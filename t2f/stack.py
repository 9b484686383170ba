"""The serving stack, built once and closed in reverse: store, metrics (and their listener), pages, service,
policy, web server.

``bot.py``, ``t2f serve`` and the tests open the same stack around a :class:`~t2f.serve.route.Route`
with :func:`open_stack`; only what sits on top differs (the Discord bot, or the studio's page). Every
resource is owned by one :class:`contextlib.AsyncExitStack`, so a failure half-way closes what was opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from t2f.build import admission_policy, job_service, request_defaults, warm_up_call
from t2f.config import Settings
from t2f.serve.deliveries import SavedResults
from t2f.serve.metrics import ServiceMetrics
from t2f.serve.policy import Policy
from t2f.serve.requests import RequestDefaults
from t2f.serve.route import Route
from t2f.serve.service import JobService
from t2f.serve.store import Store
from t2f.web.metrics_listener import metrics_listener

if TYPE_CHECKING:
    from t2f.serve.warmup import LocalStages
    from t2f.web.pages import FacePages
    from t2f.web.server import WebServer

SHUTDOWN_S = 30.0  # how long the running batch may finish, and faces past the GPU get their files
DELIVERIES = "deliveries"  # under T2F_OUTPUT_DIR: results kept until their delivery is recorded


@dataclass(frozen=True)
class WebPlan:
    """The web server to run beside the service: where it listens, and whether it serves the studio page."""

    host: str
    port: int
    studio: bool = False


@dataclass(frozen=True)
class Stack:
    """What the bot or the studio runs on.

    Attributes
    ----------
    warm_up : the start-up warm-up for :meth:`JobService.warm_up` (``None``: none is configured, or the Ray
        cluster warms its replicas itself and this only waits for one to answer).
    saved : finished results kept until their delivery is recorded (``<T2F_OUTPUT_DIR>/deliveries``).
    pages : the 3D pages (``None`` without a web server); ``web`` the running server.
    """

    settings: Settings
    store: Store
    metrics: ServiceMetrics
    service: JobService
    policy: Policy
    defaults: RequestDefaults
    saved: SavedResults
    warm_up: Callable[[], object] | None
    pages: FacePages | None = None
    web: WebServer | None = None


@contextlib.asynccontextmanager
async def open_stack(
    settings: Settings,
    route: Route,
    *,
    stages: LocalStages | None = None,
    web: WebPlan | None = None,
    store: Store | None = None,
) -> AsyncIterator[Stack]:
    """Open everything around ``route`` (its models already loaded), yield it, then close it in reverse.

    ``stages`` are the route's local stages, warmed up at start when ``T2F_WARMUP`` is on; without them (the
    Ray backend) the warm-up waits for the first replica. With ``web``, the face pages are saved by the
    route's files stage itself (so every face, from any painter, gets its page) and the web server runs.
    A ``store`` already open (a test's) is used and left open; otherwise ``T2F_DB_PATH`` is opened here.
    """
    async with contextlib.AsyncExitStack() as resources:
        if store is None:
            store = await Store.open(settings.db_path)
            resources.push_async_callback(store.close)
        metrics = ServiceMetrics()
        metrics.watch_disk(  # the filesystems whose filling up stops faces (the disk alert reads these)
            {"outputs": settings.output_dir, "database": settings.db_path.parent, "models": settings.data_dir()}
        )
        pages = await _open_pages(settings) if web is not None else None
        if pages is not None:
            from t2f.web.pages import PageKeepingFiles

            route = dataclasses.replace(route, files=PageKeepingFiles(route.files, pages))
        service = job_service(settings, route, metrics=metrics)
        resources.push_async_callback(service.shutdown, timeout_s=SHUTDOWN_S)
        policy = admission_policy(settings, store=store, service=service)
        if (listener := metrics_listener(metrics.render, settings)) is not None:  # T2F_METRICS_PORT, on its own
            await listener.start()
            resources.push_async_callback(listener.stop)
        stack = Stack(
            settings=settings,
            store=store,
            metrics=metrics,
            service=service,
            policy=policy,
            defaults=request_defaults(settings),
            saved=SavedResults(settings.output_dir / DELIVERIES),
            warm_up=_warm_up(settings, route, stages),
            pages=pages,
        )
        if web is not None and pages is not None:
            server = await resources.enter_async_context(_web_server(stack, pages, web))
            stack = dataclasses.replace(stack, web=server)
        yield stack


def _warm_up(settings: Settings, route: Route, stages: LocalStages | None) -> Callable[[], object] | None:
    if not settings.warmup:
        return None
    if stages is not None:
        return warm_up_call(settings, stages)
    return getattr(route.paint, "warm_up", None)  # the Ray backend: wait for a warmed-up replica


async def _open_pages(settings: Settings) -> FacePages:
    from t2f.web.pages import open_pages

    return await asyncio.to_thread(
        open_pages,
        output_dir=settings.output_dir,
        cache_dir=settings.data_dir(),
        secret=settings.web_secret,
        keep_days=settings.keep_days,
        public_url=settings.public_url,
    )


@contextlib.asynccontextmanager
async def _web_server(stack: Stack, pages: FacePages, plan: WebPlan) -> AsyncIterator[WebServer]:
    """The web server: the face pages and ``/healthz`` (never ``/metrics``: that has a listener of its own);
    with ``plan.studio`` the prompt page."""
    from t2f.web.access import WebAccess
    from t2f.web.assets import installed_script
    from t2f.web.server import WebServer, web_app
    from t2f.web.studio import Studio

    settings, service = stack.settings, stack.service
    studio = (
        Studio(
            service=service,
            store=stack.store,
            policy=stack.policy,
            pages=pages,
            defaults=stack.defaults,
            web_pending=settings.web_pending,
        )
        if plan.studio
        else None
    )
    app = web_app(
        pages=pages,
        viewer_script=installed_script(settings.data_dir()),
        health=functools.partial(service.health, require_warm=settings.warmup),
        access=WebAccess.from_settings(settings, listen_host=plan.host),
        extra_routes=studio.routes() if studio is not None else None,
    )
    server = WebServer(app, host=plan.host, port=plan.port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        if studio is not None:
            await service.shutdown(timeout_s=SHUTDOWN_S)  # the studio's followers record the last results
            await studio.close()
