"""Loaded by every Python process a test starts with this folder on ``PYTHONPATH`` (``site`` imports it).

It stubs the network on loopback for the real entry points (``python bot.py``, ``t2f download``):
Discord's REST API and gateway (discord.py's own addresses) and the npm registry point at servers the
test runs on 127.0.0.1, and any connection or name lookup for another address is refused, so a start
that still tried to reach the internet fails instead of passing by luck. Nothing else is changed: the
commands, their settings and their code paths are the ones the Docker image runs.
"""

from __future__ import annotations

import ipaddress
import os
import socket

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in LOOPBACK_NAMES or host == "":
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified  # 0.0.0.0 and :: to listen on (this machine)


def _install() -> None:
    lookup, connect = socket.getaddrinfo, socket.socket.connect

    def loopback_lookup(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host is not None and not _is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"network stubbed on loopback: {host} refused")
        return lookup(host, *args, **kwargs)

    def loopback_connect(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise ConnectionRefusedError(f"network stubbed on loopback: {address[0]} refused")
        return connect(self, address)

    socket.getaddrinfo = loopback_lookup
    socket.socket.connect = loopback_connect  # type: ignore[method-assign]

    if "LOOPBACK_DISCORD_API" in os.environ:
        import discord.gateway
        import discord.http
        import yarl

        discord.http.Route.BASE = os.environ["LOOPBACK_DISCORD_API"]
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["LOOPBACK_DISCORD_GATEWAY"])
    if "LOOPBACK_NPM_REGISTRY" in os.environ:
        import t2f.web.assets

        t2f.web.assets.REGISTRY = os.environ["LOOPBACK_NPM_REGISTRY"]


if os.environ.get("LOOPBACK_NETWORK") == "1":
    _install()
