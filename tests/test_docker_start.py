"""The Docker image's start command, run here with the image's ENV, until the bot says it is ready.

Docker cannot run where this project is developed, so the test runs what the container runs: the
Dockerfile's CMD (parsed from it, not copied) in a subprocess whose environment is the Dockerfile's ENV,
with ``/data`` moved to a temporary folder and ``/app`` a folder holding ``bot.py`` (and no ``.env``, as the
image has none). The operator's settings come as compose's ``env_file`` gives them, as variables: a tiny
local diffusion model, random PRNet weights already on the volume, the CPU. The network is stubbed on
loopback (``tests/loopback_site``): Discord is ``tests/loopback_discord.py`` and the npm registry serves
the real model-viewer tarball; any other address is refused. ``tini``, the image's PID 1, is the one part
not run here (tests/test_docker.py checks it is there).
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dockerfile import ROOT, exec_form, image_env
from loopback_discord import LoopbackDiscord
from test_web import loopback_registry, model_viewer_tarball  # noqa: F401  (fixtures)

from t2f.web.assets import SCRIPT_NAME

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
READY = "ready: logged in as t2f-loopback, in 0 servers"
# A safety net for a start that hangs, not a speed claim: the start takes about 20 s alone on this machine.
START_LIMIT_S = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_on_every_interface(port: int) -> bool:
    """Whether a TCP socket listens on 0.0.0.0:``port`` (read from /proc, so no other address is contacted)."""
    table = Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]
    wanted = f"00000000:{port:04X}"
    return any(row.split()[1] == wanted and row.split()[3] == "0A" for row in table)  # 0A: LISTEN


@pytest.fixture
def discord_stand_in() -> Iterator[LoopbackDiscord]:
    server = LoopbackDiscord()
    yield server
    server.close()


def container_env(data: Path, web_port: int, **settings: str) -> dict[str, str]:
    """The image's ENV with ``/data`` under ``data``, the web port free here, and the operator's settings."""
    env = {
        name: value.replace("/data", str(data), 1) if value.startswith("/data") else value
        for name, value in image_env().items()
    }
    env["T2F_WEB_PORT"] = str(web_port)  # 8080 may be taken on a shared machine; the host (0.0.0.0) is the image's
    env.update(
        PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",  # this environment's python and t2f, as the image's
        HOME=str(data.parent),
        PYTHONPATH=str(ROOT / "tests" / "loopback_site"),
        HF_HUB_OFFLINE="1",
        **settings,
    )
    return env


def test_the_image_start_command_reaches_ready_and_stops_on_sigterm(
    tmp_path: Path,
    tiny_sd: Path,
    prnet_dir: Path,
    loopback_registry: str,  # noqa: F811  (a fixture)
    discord_stand_in: LoopbackDiscord,
) -> None:
    data, app = tmp_path / "data", tmp_path / "app"
    app.mkdir()
    (app / "bot.py").symlink_to(ROOT / "bot.py")
    shutil.copytree(prnet_dir, data / "hf" / "t2f" / "prnet")  # as a volume that kept PRNet from a first start
    web_port = free_port()
    env = container_env(
        data,
        web_port,
        DISCORD_TOKEN=TOKEN,
        T2F_MODEL=str(tiny_sd),
        T2F_TAESD="",
        T2F_DEVICE="cpu",
        T2F_IMAGE_SIZE="64",
        T2F_STEPS="5",  # the fewest a member may ask for, so also the lowest default
        T2F_LOG_FORMAT="json",  # also: every line on stderr is JSON, from all three commands
        LOOPBACK_NETWORK="1",
        LOOPBACK_DISCORD_API=discord_stand_in.api_url,
        LOOPBACK_DISCORD_GATEWAY=discord_stand_in.gateway_url,
        LOOPBACK_NPM_REGISTRY=loopback_registry,
    )
    command = exec_form("CMD")
    process = subprocess.Popen(command, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_stderr, daemon=True).start()
    seen: list[str] = []
    try:
        while True:
            line = lines.get(timeout=START_LIMIT_S)
            if line is None:
                pytest.fail(f"the start command exited ({process.wait()}) before it was ready:\n{''.join(seen)}")
            seen.append(line)
            if READY in line:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=30) as response:
            health = (response.status, response.read().decode().strip())
        every_interface = listening_on_every_interface(web_port)
        process.send_signal(signal.SIGTERM)  # what tini passes on at `docker stop`
        # Not communicate(): it reads stderr too, and would take lines from under the reader thread.
        process.wait(timeout=START_LIMIT_S)
        assert process.stdout is not None
        stdout = process.stdout.read()  # a few lines, far below a pipe's buffer, so wait() cannot block on it
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while (line := lines.get(timeout=60)) is not None:
        seen.append(line)
    assert process.returncode == 0, "".join(seen)
    assert health == (200, "ok") and every_interface
    records = [json.loads(line) for line in seen]  # every stderr line is one JSON object
    assert all(isinstance(r, dict) and r["level"] in ("INFO", "WARNING") for r in records), records
    messages = [r["message"] for r in records]
    assert READY in messages and messages[-1] == "shutting down with 0 jobs queued for the next start", records
    # `t2f web-assets` fetched the viewer from the (loopback) registry before the check asked for it.
    assert (data / "hf" / "t2f" / "web" / SCRIPT_NAME).is_file()
    assert "t2f bot: configuration ok" in stdout.splitlines()
    # The check and the start each asked Discord about the token; the start then logged in for real.
    assert discord_stand_in.requests == [
        "GET /api/v10/users/@me",
        "GET /api/v10/users/@me",
        "GET /api/v10/users/@me",
        "GET /api/v10/oauth2/applications/@me",
        "PUT /api/v10/applications/222222222222222222/commands",
        "GET /gateway/",
    ]
    assert (data / "t2f.sqlite3").is_file()  # the database on the volume


def test_without_the_viewer_the_check_fails_in_one_line(tmp_path: Path) -> None:
    """The image's web port needs the viewer: `--check-config` says how to fetch it before any model loads."""
    data, app = tmp_path / "data", tmp_path / "app"
    app.mkdir()
    (app / "bot.py").symlink_to(ROOT / "bot.py")
    env = container_env(data, free_port(), DISCORD_TOKEN=TOKEN)
    done = subprocess.run(
        ["python", "bot.py", "--check-config", "--offline"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"t2f bot: configuration error: T2F_WEB_PORT={env['T2F_WEB_PORT']} serves 3D pages, but the 3D viewer "
        f"(@google/model-viewer 4.4.0) is not downloaded in {data / 'hf' / 't2f'}; fetch it with: t2f web-assets "
        "(t2f download fetches it too).\n"
    )
