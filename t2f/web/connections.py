"""Time limits on every connection and a cap on open ones, for the web server and the metrics listener.

aiohttp keeps a connection open while it waits for a request's headers, however slowly they come,
and has no cap on connections: 3,000 half-sent requests held 3,012 file descriptors for minutes.
:class:`GuardedSite` listens like aiohttp's ``TCPSite`` but wraps each connection:

- a connection over ``max_open`` is answered ``503`` with ``Retry-After`` and closed at once;
- a request's line and headers must arrive within ``header_s`` of the connection opening, or of the
  first byte after the previous request was answered;
- between requests a kept-alive connection may idle ``idle_s`` (aiohttp's ``keepalive_timeout``);
- a body must arrive within ``body_s`` (the JSON API reads it under that limit: :mod:`t2f.web.api`), and
  the rest of a body left unread after the answer is drained for at most that long (10 s at most).

The end of the headers is an empty line, found in the bytes as they arrive; the middleware
:func:`answered` tells the connection when its request was handled, so the next bytes start the clock.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BUSY_RETRY_S = 5
_BUSY_TEXT = b"The server is busy; try again in a few seconds.\n"
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    + f"Retry-After: {BUSY_RETRY_S}\r\nConnection: close\r\nContent-Length: {len(_BUSY_TEXT)}\r\n\r\n".encode()
    + _BUSY_TEXT
)


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a connection may take over each part of a request, and how many may be open at once.

    ``idle_s`` is longer than a reverse proxy's usual upstream keep-alive (nginx: 60 s), so the proxy,
    not this server, closes an idle connection and never sends a request into one being closed.
    """

    header_s: float = 10.0
    body_s: float = 30.0
    idle_s: float = 75.0
    max_open: int = 256


DEFAULT_LIMITS = ConnectionLimits()


class OpenConnections:
    """The count of a site's open connections (only the event loop's thread touches it)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.count = 0


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the cap and the header clock.

    Its ``state`` is ``headers`` (the clock runs until the empty line that ends them), ``request`` (the
    handler has the request; no clock) or ``answered`` (the next byte starts a new request's clock).
    """

    def __init__(self, inner: asyncio.Protocol, connections: OpenConnections) -> None:
        self.inner = inner
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.admitted = False
        self.state = "headers"  # a new connection owes its first request's headers
        self._tail = b""  # the last bytes seen, for an empty line split across two reads
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.connections.count >= self.connections.limits.max_open:
            transport.write(BUSY)
            transport.close()
            return
        self.connections.count += 1
        self.admitted = True
        self.inner.connection_made(transport)
        self._start_clock()

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        if self.state == "answered":  # the first byte of the next request
            self.state, self._tail = "headers", b""
            self._start_clock()
        if self.state == "headers":
            seen = self._tail + data
            if b"\n\n" in seen or b"\n\r\n" in seen:  # the empty line that ends the headers
                self.state = "request"
                self._stop_clock()
            self._tail = seen[-2:]
        self.inner.data_received(data)

    def answered(self) -> None:
        """The request was handled: from now on, the next bytes are a new request's."""
        if self.state == "request":
            self.state = "answered"

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        if self.admitted:
            self.admitted = False
            self.connections.count -= 1
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _start_clock(self) -> None:
        self._stop_clock()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.connections.limits.header_s, self._too_slow)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport is not None and self.state == "headers":
            log.debug("closing a connection whose request headers took over %.0f s", self.connections.limits.header_s)
            self.transport.close()


@web.middleware
async def answered(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the request's connection when its handler is done, so its next request gets ``header_s`` again."""
    try:
        return await handler(request)
    finally:
        transport = request.transport
        connection = transport.get_protocol() if transport is not None else None
        if isinstance(connection, GuardedConnection):
            connection.answered()


class GuardedSite(web.BaseSite):
    """aiohttp's TCP site with :class:`ConnectionLimits` on every connection (port 0 picks a free port)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits) -> None:
        super().__init__(runner)
        self.host = host
        self.port = port
        self.connections = OpenConnections(limits)

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        protocols = self._runner.server
        assert protocols is not None

        def guarded() -> GuardedConnection:
            return GuardedConnection(protocols(), self.connections)

        self._server = await asyncio.get_running_loop().create_server(guarded, self.host, self.port)
        if self._server.sockets:
            self.port = int(self._server.sockets[0].getsockname()[1])


def listen_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host:port`` now, as a clause for a message, or None when it can.

    Tried, not guessed: a socket is bound to each of the host's addresses (with ``SO_REUSEADDR``, as
    asyncio binds) and closed again. Port 0 asks the system for any free port.
    """
    if not 0 <= port <= 65535:
        return "that is not a port; use 1 to 65535"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        return "the host is neither an address nor a name this machine resolves"
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return {
                    errno.EADDRINUSE: "the port is in use (another server, or another t2f, listens there)",
                    errno.EADDRNOTAVAIL: "the host is not an address of this machine",
                    errno.EACCES: "ports below 1024 need privileges this user does not have",
                }.get(exc.errno or 0, f"{exc.strerror or type(exc).__name__}")
    return None


class WebServer:
    """Start and stop an application on ``host:port`` under ``limits`` (port 0 picks a free one; see :attr:`port`)."""

    def __init__(
        self, app: web.Application, *, host: str, port: int, limits: ConnectionLimits = DEFAULT_LIMITS
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.limits = limits
        self._runner: web.AppRunner | None = None
        self._site: GuardedSite | None = None

    @property
    def open_connections(self) -> int:
        """Connections open now (0 when stopped)."""
        return self._site.connections.count if self._site is not None else 0

    async def start(self) -> None:
        runner = web.AppRunner(
            self.app,
            access_log=None,
            keepalive_timeout=self.limits.idle_s,
            # The rest of a body left unread (a refused request) is read and dropped for at most this long.
            lingering_time=min(10.0, self.limits.body_s),
        )
        await runner.setup()
        site = GuardedSite(runner, self.host, self.port, self.limits)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        self.port = site.port
        log.info("web server listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
