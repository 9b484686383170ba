"""``t2f web-assets`` and ``t2f serve``: the web app on one machine, without Discord (:mod:`t2f.web`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from t2f.config import Settings
from t2f.errors import InvalidInput

if TYPE_CHECKING:
    from t2f.serve.backend import LocalFaceBackend
    from t2f.serve.ray_backend import RayFaceBackend
    from t2f.serve.service import FaceBackend, JobService
    from t2f.web.server import WebServer


def cmd_web_assets(args: argparse.Namespace, settings: Settings) -> int:
    """Fetch the 3D viewer (``<model-viewer>``, integrity-checked) into the cache, once."""
    from t2f.web.assets import PACKAGE, VERSION, install_model_viewer

    path = install_model_viewer(settings.data_dir(), registry=args.registry)
    print(f"{PACKAGE} {VERSION}: {path}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """``t2f serve``: the prompt page, live progress and the 3D face, on this machine, until Ctrl-C."""
    import asyncio

    from t2f.build import load_backend
    from t2f.web.assets import installed_script

    host = args.host or settings.web_host
    port = args.port if args.port is not None else settings.web_port or 8080
    check_listening(settings, host, port)  # before minutes of model loading, like the viewer below
    installed_script(settings.data_dir())  # before minutes of model loading: the page needs the viewer
    backend = load_backend(settings)
    asyncio.run(_serve(settings, backend, host=host, port=port))
    return 0


def check_listening(settings: Settings, host: str, port: int) -> None:
    """``t2f serve`` can listen on ``host:port`` (and the metrics on theirs), else :class:`InvalidInput`."""
    from t2f.web.connections import listen_problem

    listeners = [("t2f serve", host, port)]
    if settings.metrics_port:
        if settings.metrics_port == port:
            raise InvalidInput(f"T2F_METRICS_PORT={port} is also the web port; give the metrics a port of their own.")
        listeners.append(("The metrics", settings.metrics_host, settings.metrics_port))
    for who, on_host, on_port in listeners:
        if (problem := listen_problem(on_host, on_port)) is not None:
            raise InvalidInput(f"{who} cannot listen on {on_host[:100]}:{on_port}: {problem}.")


@contextlib.asynccontextmanager
async def open_studio(
    settings: Settings, backend: FaceBackend, *, host: str, port: int
) -> AsyncIterator[tuple[WebServer, JobService]]:
    """The ``t2f serve`` server around ``backend``: store, service, the bot's admission, pages, routes."""
    import asyncio
    import functools

    from t2f.build import admission_policy, job_service
    from t2f.serve.store import Store
    from t2f.web.access import WebAccess
    from t2f.web.assets import installed_script
    from t2f.web.metrics_listener import metrics_listener
    from t2f.web.pages import PageKeepingBackend, open_pages
    from t2f.web.server import WebServer, web_app
    from t2f.web.studio import FaceDefaults, Studio

    pages = await asyncio.to_thread(
        open_pages,
        output_dir=settings.output_dir,
        cache_dir=settings.data_dir(),
        secret=settings.web_secret,
        keep_days=settings.keep_days,
        public_url=settings.public_url,
    )
    store = await Store.open(settings.db_path)
    service = job_service(settings, PageKeepingBackend(backend, pages))
    policy = admission_policy(settings, store=store, service=service)
    studio = Studio(
        service=service,
        store=store,
        policy=policy,
        pages=pages,
        defaults=FaceDefaults(settings.steps, settings.guidance, settings.image_size, settings.max_repaints),
        web_pending=settings.web_pending,
    )
    health = functools.partial(service.health, require_warm=settings.warmup)
    access = WebAccess.from_settings(settings, listen_host=host)
    metrics = metrics_listener(service.metrics.render, settings)
    app = web_app(
        pages=pages,
        viewer_script=installed_script(settings.data_dir()),
        health=health,
        access=access,
        metrics=metrics,
        extra_routes=studio.routes(),
    )
    server = WebServer(app, host=host, port=port)
    await server.start()
    try:
        yield server, service
    finally:
        await server.stop()
        await service.shutdown(timeout_s=30)
        await studio.close()
        await store.close()


async def _serve(settings: Settings, backend: LocalFaceBackend | RayFaceBackend, *, host: str, port: int) -> None:
    import asyncio
    import functools
    import signal

    from t2f.web.server import exposure_warning

    async with open_studio(settings, backend, host=host, port=port) as (server, service):
        if (warning := exposure_warning(host, server.port)) is not None:
            print(f"t2f serve: {warning}", file=sys.stderr)
        print(f"t2f serve: open {server.url}/ (Ctrl-C stops)", file=sys.stderr)
        if settings.warmup:  # /healthz answers 503 "warming up" meanwhile
            warm_up = functools.partial(
                backend.warm_up,
                settings.image_size,
                max_batch=settings.max_batch,
                compiled=settings.compile != "off",
                steps=settings.steps,
            )
            await service.warm_up(warm_up)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
