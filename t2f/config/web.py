"""The web server's settings: where it listens, who may reach it, and the metrics listener (``t2f.web``).

:class:`WebSettings` is a base of :class:`t2f.config.Settings`, so its fields are read and documented like
every other setting; it lives here because the web server is a subject of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from t2f import bounds
from t2f.config.values import setting
from t2f.errors import ConfigError


@dataclass(frozen=True)
class WebSettings:
    """The web server's settings (README "3D pages and t2f serve")."""

    web_port: int = setting(
        "T2F_WEB_PORT",
        0,
        "Port of the web server (3D face pages, `/healthz`) in the bot; "
        "0 keeps it off. `t2f serve` uses it too (8080 when 0).",
        allowed=f"{bounds.WEB_PORT.text}, 0 = off",
    )
    web_host: str = setting(
        "T2F_WEB_HOST",
        "127.0.0.1",
        "Address the web server listens on; loopback unless a "
        "reverse proxy on another machine must reach it (e.g. `0.0.0.0`).",
    )
    public_url: str = setting(
        "T2F_PUBLIC_URL",
        "",
        "Address members reach the web server at (e.g. "
        '`https://faces.example.org` behind a reverse proxy); empty: no "View in 3D" button.',
        allowed="empty, or an http(s):// URL",
    )
    web_secret: str = setting(
        "T2F_WEB_SECRET",
        "",
        "Key that signs face links; empty: generated once and kept in `<T2F_CACHE_DIR>/web/secret`. Secret.",
        secret=True,
    )
    keep_days: int = setting(
        "T2F_KEEP_DAYS",
        7,
        "Days a face's page, link and files live; older ones are deleted.",
        allowed=bounds.KEEP_DAYS.text,
    )
    web_allowed_hosts: tuple[str, ...] = setting(
        "T2F_WEB_ALLOWED_HOSTS",
        (),
        "Host names the web server answers to besides loopback and T2F_PUBLIC_URL's (DNS rebinding "
        "protection): e.g. the machine's address when browsers reach it without a proxy; `*` answers any.",
        allowed="host names or addresses, comma-separated",
    )
    trusted_proxies: tuple[str, ...] = setting(
        "T2F_TRUSTED_PROXIES",
        (),
        "Reverse proxies whose `X-Forwarded-For` (or `Forwarded`) header names the visitor; nobody else's "
        "is read. Empty: every visitor is the address that connected.",
        allowed="addresses or CIDR networks, comma-separated",
    )
    web_pending: int = setting(
        "T2F_WEB_PENDING",
        10,
        "Most faces all anonymous web visitors (`t2f serve`'s page) may have waiting or running together, "
        "beside T2F_USER_PENDING for each; the rest of the queue stays free for members.",
        allowed=bounds.WEB_PENDING.text,
    )
    metrics_port: int = setting(
        "T2F_METRICS_PORT",
        0,
        "Port of the Prometheus `/metrics` listener, apart from the web pages; 0 keeps it off.",
        allowed=f"{bounds.WEB_PORT.text}, 0 = off",
    )
    metrics_host: str = setting(
        "T2F_METRICS_HOST",
        "127.0.0.1",
        "Address the `/metrics` listener listens on (e.g. `0.0.0.0` for a Prometheus in another container).",
    )
    metrics_token: str = setting(
        "T2F_METRICS_TOKEN",
        "",
        "Bearer token Prometheus must send to `/metrics` (`Authorization: Bearer …`); empty: none. Secret.",
        secret=True,
    )

    def check_web(self) -> None:
        """Raise :class:`ConfigError` when two web settings contradict each other."""
        if self.metrics_port and self.metrics_port == self.web_port:
            raise ConfigError(
                f"T2F_METRICS_PORT={self.metrics_port} is also T2F_WEB_PORT; give the metrics a port of their own."
            )
