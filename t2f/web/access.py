"""Who the web server answers: host names it serves, pages that may ask it for work, and who each visitor is.

- **Host**: a request whose ``Host`` is not loopback, the address the server listens on,
  ``T2F_PUBLIC_URL``'s host or one of ``T2F_WEB_ALLOWED_HOSTS`` gets ``421`` in one line. A page on
  another site that re-points its own name at 127.0.0.1 (DNS rebinding) still sends its own name as
  the host, so it never reads an answer.
- **Origin**: a request that can change something (``POST``) from a browser must come from one of the
  app's own pages: ``Sec-Fetch-Site`` must be ``same-origin`` (or ``none``, typed by the person), and
  ``Origin`` the app's own origin or ``T2F_PUBLIC_URL``'s; else ``403``. A client that is no browser
  sends neither and is let through: a web page cannot leave both out.
- **Visitor**: the address that connected, unless it is one of ``T2F_TRUSTED_PROXIES``: then the
  forwarded header names the visitor (:mod:`t2f.web.visitors`).

``/healthz`` answers any host, so a container orchestrator's probe by address keeps working; it tells
nothing but "ok" or why not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from t2f.web.visitors import Network, VisitorKey, visitor_key

LOOPBACK_NAMES = frozenset({"localhost"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # listening on every address names none of them
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANY_HOST_PATHS = frozenset({"/healthz"})
WRONG_HOST = "This server does not answer to that host name.\n"
FOREIGN_PAGE = "Only this app's own pages can ask it for work."
VISITOR = web.RequestKey("visitor", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_name(header: str) -> str:
    """The name in a ``Host`` header, lower-cased, without port, brackets or trailing dot (``[::1]:80`` is ``::1``)."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:  # name:port; more than one colon is a bare IPv6 address
        text = text.split(":", 1)[0]
    return text.rstrip(".")


def is_loopback_name(name: str) -> bool:
    """Whether ``name`` can only mean this machine: ``localhost`` or a loopback address."""
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):  # RFC 6761: browsers resolve these themselves
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def origin_of(scheme: str, host: str) -> str:
    """``scheme://host[:port]`` as a browser writes an ``Origin``: lower-case, the default port left out."""
    scheme, host = scheme.lower(), host.lower().rstrip(".")
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and host.endswith(default):
        host = host[: -len(default)]
    return f"{scheme}://{host}"


class AccessSettings(Protocol):
    """The settings :class:`WebAccess` reads (:class:`t2f.config.Settings` has them; the web layer cannot import it)."""

    @property
    def web_allowed_hosts(self) -> tuple[str, ...]: ...
    @property
    def public_url(self) -> str: ...
    @property
    def trusted_proxies(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class WebAccess:
    """Who the web server answers and whose forwarded headers it believes.

    Parameters
    ----------
    allowed_hosts : host names served besides loopback ones and the public URL's (``*``: any).
    public_origin : ``T2F_PUBLIC_URL``'s origin (``https://faces.example.org``), or empty.
    trusted_proxies : the networks whose forwarded headers name the visitor.
    """

    allowed_hosts: frozenset[str] = frozenset()
    public_origin: str = ""
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        allowed_hosts: Iterable[str] = (),
        public_url: str = "",
        trusted_proxies: Iterable[str] = (),
        listen_host: str = "",
    ) -> WebAccess:
        """From the settings' values (``T2F_WEB_ALLOWED_HOSTS``, ``T2F_PUBLIC_URL``, ``T2F_TRUSTED_PROXIES``);
        ``listen_host``, the address the server listens on, is served too unless it is every address."""
        hosts = {host_name(name) for name in allowed_hosts}
        if listen_host not in WILDCARD_HOSTS:
            hosts.add(host_name(listen_host))
        origin = ""
        if public_url:
            parts = urlsplit(public_url)
            origin = origin_of(parts.scheme, parts.netloc.rpartition("@")[2])
            hosts.add(host_name(parts.netloc.rpartition("@")[2]))
        networks = tuple(ipaddress.ip_network(text, strict=False) for text in trusted_proxies)
        return cls(frozenset(hosts), origin, networks)

    @classmethod
    def from_settings(cls, settings: AccessSettings, *, listen_host: str) -> WebAccess:
        """:meth:`of` the settings, for a server listening on ``listen_host``."""
        return cls.of(
            allowed_hosts=settings.web_allowed_hosts,
            public_url=settings.public_url,
            trusted_proxies=settings.trusted_proxies,
            listen_host=listen_host,
        )

    def host_allowed(self, header: str | None) -> bool:
        """Whether to answer a request with this ``Host`` header (none at all: not a browser, so yes)."""
        if header is None or "*" in self.allowed_hosts:
            return True
        name = host_name(header)
        return is_loopback_name(name) or name in self.allowed_hosts

    def from_own_page(self, request: web.BaseRequest) -> bool:
        """Whether a request that changes something comes from one of the app's own pages (or no browser)."""
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site.lower() not in ("same-origin", "none"):
            return False
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        own = {origin_of(request.scheme, request.headers.get("Host", "")), self.public_origin} - {""}
        return origin_of(*origin.split("://", 1)) in own if "://" in origin else False

    def visitor(self, request: web.BaseRequest) -> VisitorKey:
        return visitor_key(
            request.remote,
            forwarded_for=request.headers.getall("X-Forwarded-For", []),
            forwarded=request.headers.getall("Forwarded", []),
            trusted=self.trusted_proxies,
        )

    def middleware(self) -> Middleware:
        """The checks above for every request, and the visitor's key for the handlers (:func:`visitor_of`)."""

        @web.middleware
        async def checked(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path not in ANY_HOST_PATHS and not self.host_allowed(request.headers.get("Host")):
                return web.Response(status=421, text=WRONG_HOST)
            if request.method not in SAFE_METHODS and not self.from_own_page(request):
                return web.json_response({"error": FOREIGN_PAGE}, status=403)
            request[VISITOR] = self.visitor(request)
            return await handler(request)

        return checked


LOOPBACK_ONLY = WebAccess()  # loopback host names only, no public URL, no trusted proxy


def visitor_of(request: web.Request) -> VisitorKey:
    """The visitor's key the access middleware found, else the connecting address's (no proxy trusted)."""
    return request.get(VISITOR) or visitor_key(request.remote, forwarded_for=[], forwarded=[], trusted=())
