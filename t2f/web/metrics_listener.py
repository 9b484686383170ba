"""``/metrics`` on a listener of its own (``T2F_METRICS_PORT``, ``T2F_METRICS_HOST``), never on the public app.

The public pages are published to the internet through a reverse proxy; the metrics are for the
operator's Prometheus. So they listen apart, on loopback unless told otherwise, optionally behind a
bearer token (``T2F_METRICS_TOKEN``, compared in constant time). Without a token the listener answers
only loopback host names, its own address and ``T2F_WEB_ALLOWED_HOSTS`` (so a web page cannot read it
by DNS rebinding); with one, any host name, since a page cannot send the token.

It starts and stops with the web app it is given to (:func:`~t2f.web.server.web_app`'s ``metrics``).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

from aiohttp import web

from t2f.web.access import WebAccess
from t2f.web.connections import DEFAULT_LIMITS, ConnectionLimits, WebServer, answered

log = logging.getLogger(__name__)
Metrics = Callable[[], tuple[bytes, str]]  # (body, content type)
TOKEN_NEEDED = "This listener needs a bearer token (Authorization: Bearer ...).\n"


class MetricsListener:
    """Serve ``GET /metrics`` from ``render`` on ``host:port`` (port 0 picks a free one; see :attr:`url`).

    Parameters
    ----------
    render : the metrics' text and content type (``ServiceMetrics.render``).
    host, port : where it listens.
    token : the bearer token a scrape must send; empty: none.
    allowed_hosts : host names it answers besides loopback and its own address (unused with a token).
    limits : its connections' limits.
    """

    def __init__(
        self,
        render: Metrics,
        *,
        host: str,
        port: int,
        token: str = "",
        allowed_hosts: Iterable[str] = (),
        limits: ConnectionLimits = DEFAULT_LIMITS,
    ) -> None:
        self.render = render
        self.token = token.encode("utf-8")
        self.access = WebAccess.of(allowed_hosts=["*"] if token else allowed_hosts, listen_host=host)
        self.server = WebServer(self._app(), host=host, port=port, limits=limits)

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[answered, self.access.middleware()], client_max_size=1024)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.token:
            sent = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(sent, b"Bearer " + self.token):
                return web.Response(status=401, text=TOKEN_NEEDED, headers={"WWW-Authenticate": "Bearer"})
        body, content_type = self.render()
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    @property
    def url(self) -> str:
        return self.server.url + "/metrics"

    async def start(self) -> None:
        await self.server.start()
        log.info("metrics at %s%s", self.url, " (bearer token required)" if self.token else "")

    async def stop(self) -> None:
        await self.server.stop()

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """An aiohttp ``cleanup_ctx``: listen while ``app`` runs."""
        await self.start()
        yield
        await self.stop()


class MetricsSettings(Protocol):
    """The settings the listener reads (:class:`t2f.config.Settings` has them)."""

    @property
    def metrics_port(self) -> int: ...
    @property
    def metrics_host(self) -> str: ...
    @property
    def metrics_token(self) -> str: ...
    @property
    def web_allowed_hosts(self) -> tuple[str, ...]: ...


def metrics_listener(render: Metrics | None, settings: MetricsSettings) -> MetricsListener | None:
    """The listener the settings ask for (``T2F_METRICS_*``), or None when it is off or has nothing to render."""
    if render is None or not settings.metrics_port:
        return None
    return MetricsListener(
        render,
        host=settings.metrics_host,
        port=settings.metrics_port,
        token=settings.metrics_token,
        allowed_hosts=settings.web_allowed_hosts,
    )
