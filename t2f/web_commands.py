"""``t2f web-assets`` and ``t2f serve``: the web app on one machine, without Discord (:mod:`t2f.web`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from t2f.config import Settings
from t2f.errors import InvalidInput
from t2f.stack import WebPlan, open_stack

if TYPE_CHECKING:
    from t2f.serve.route import Route
    from t2f.serve.warmup import LocalStages


def cmd_web_assets(args: argparse.Namespace, settings: Settings) -> int:
    """Fetch the 3D viewer (``<model-viewer>``, integrity-checked) into the cache, once."""
    from t2f.web.assets import PACKAGE, VERSION, install_model_viewer

    path = install_model_viewer(settings.data_dir(), registry=args.registry)
    print(f"{PACKAGE} {VERSION}: {path}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """``t2f serve``: the prompt page, live progress and the 3D face, on this machine, until Ctrl-C."""
    import asyncio

    from t2f.build import load_route
    from t2f.web.assets import installed_script

    host = args.host or settings.web_host
    port = args.port if args.port is not None else settings.web_port or 8080
    check_listening(settings, host, port)  # before minutes of model loading, like the viewer below
    installed_script(settings.data_dir())  # before minutes of model loading: the page needs the viewer
    route, stages = load_route(settings)
    asyncio.run(_serve(settings, route, stages, WebPlan(host, port, studio=True)))
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


async def _serve(settings: Settings, route: Route, stages: LocalStages | None, plan: WebPlan) -> None:
    import asyncio
    import signal

    from t2f.web.server import exposure_warning

    async with open_stack(settings, route, stages=stages, web=plan) as stack:
        assert stack.web is not None
        if (warning := exposure_warning(plan.host, stack.web.port)) is not None:
            print(f"t2f serve: {warning}", file=sys.stderr)
        print(f"t2f serve: open {stack.web.url}/ (Ctrl-C stops)", file=sys.stderr)
        if stack.warm_up is not None:  # /healthz answers 503 "warming up" meanwhile
            await stack.service.warm_up(stack.warm_up)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
