"""Discord on 127.0.0.1 for a real ``python bot.py`` process: the REST calls a start makes, and a gateway.

SimCord replaces discord.py inside the test's own process; a bot started as a subprocess (the Docker
image's start command) needs a server instead. This one answers what a start asks for, in the order
discord.py asks: the token (``GET /users/@me``), the application (``GET /oauth2/applications/@me``), the
command sync (``PUT /applications/{id}/commands``), then a gateway websocket that says HELLO, takes
IDENTIFY, sends READY with no servers and acknowledges heartbeats. ``tests/loopback_site`` points the
process at it. Every request is recorded, in order, as ``"METHOD /path"``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import WSMsgType, web

BOT_ID = "111111111111111111"
APP_ID = "222222222222222222"
BOT_USER = {"id": BOT_ID, "username": "t2f-loopback", "discriminator": "0", "avatar": None, "bot": True}
APPLICATION = {
    "id": APP_ID,
    "name": "t2f-loopback",
    "description": "",
    "icon": None,
    "bot_public": False,
    "bot_require_code_grant": False,
    "owner": BOT_USER,
    "verify_key": "0" * 64,
    "flags": 0,
}
HEARTBEAT_MS = 41_250


def json_response(data: object) -> web.Response:
    """JSON with the bare content type: discord.py parses a body only when the header is exactly this."""
    return web.Response(body=json.dumps(data).encode(), headers={"Content-Type": "application/json"})


class LoopbackDiscord:
    """The server, on its own event loop in a daemon thread; :meth:`close` stops it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.identified = threading.Event()
        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/api/v10/users/@me", self.me)
        app.router.add_get("/api/v10/oauth2/applications/@me", self.application)
        app.router.add_put("/api/v10/applications/{app}/commands", self.sync)
        app.router.add_put("/api/v10/applications/{app}/guilds/{guild}/commands", self.sync)
        app.router.add_get("/gateway/", self.gateway)
        self.runner = web.AppRunner(app, access_log=None)
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True, name="loopback-discord")
        self.thread.start()
        started.wait()
        self.api_url = f"http://127.0.0.1:{self.port}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{self.port}/gateway/"

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        started.set()
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)

    def _record(self, request: web.Request) -> None:
        self.requests.append(f"{request.method} {request.path}")

    async def me(self, request: web.Request) -> web.Response:
        self._record(request)
        return json_response(BOT_USER)

    async def application(self, request: web.Request) -> web.Response:
        self._record(request)
        return json_response(APPLICATION)

    async def sync(self, request: web.Request) -> web.Response:
        self._record(request)
        await request.read()
        return json_response([])  # discord.py builds the synced commands from this list: none is fine

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        self._record(request)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}}))
        sequence = 0
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            frame: dict[str, Any] = json.loads(message.data)
            if frame.get("op") == 2:  # IDENTIFY
                sequence += 1
                await socket.send_str(json.dumps({"op": 0, "t": "READY", "s": sequence, "d": self._ready()}))
                self.identified.set()
            elif frame.get("op") == 1:  # heartbeat
                await socket.send_str(json.dumps({"op": 11, "d": None}))
        return socket

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10,
            "user": BOT_USER,
            "guilds": [],
            "session_id": "loopback-session",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": APP_ID, "flags": 0},
        }
