from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import bot
from t2f.errors import ConfigError, T2FError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "DISCORD_TOKEN is not set; copy .env.example to .env and paste your bot token there."),
        ("   ", "DISCORD_TOKEN is not set"),
        ("hunter2", "DISCORD_TOKEN does not look like a bot token"),
    ],
)
def test_bad_tokens_are_refused_without_echoing_them(token: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        bot.check_token(token)
    assert caught.value.user_message.startswith(message)
    assert "hunter2" not in caught.value.user_message


def test_token_shape_is_accepted() -> None:
    token = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
    assert bot.check_token(f"  {token}\n") == token


def test_missing_token_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bot.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "t2f bot: configuration error: "
        "DISCORD_TOKEN is not set; copy .env.example to .env and paste your bot token there."
    )


def test_every_listed_extension_has_a_setup() -> None:
    import importlib

    for name in bot.EXTENSIONS:
        assert callable(importlib.import_module(name).setup)


def test_check_config_validates_without_starting(tmp_path: Path) -> None:
    token = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={token}\nT2F_STEPS=20\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "--check-config", "--offline"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "t2f bot: configuration ok"
    assert token not in proc.stdout + proc.stderr
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={token}\nT2F_STEPS=500\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "--check-config", "--offline"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "t2f bot: configuration error: T2F_STEPS=500 is out of range; allowed: 5..50."


TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"


def run_bot_py(tmp_path: Path, env_file: bytes, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / ".env").write_bytes(env_file)
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), **env},
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            b"T2F_BLOCKLIST_FILE=missing.txt\n",
            "T2F_BLOCKLIST_FILE=missing.txt does not exist; point it at your word list or leave it empty.",
        ),
        (b"T2F_DB_PATH=.\n", "T2F_DB_PATH=. is a folder; point it at a file, e.g. t2f.sqlite3."),
        (b"T2F_GUILD_IDS=\xc2\xb2\n", "T2F_GUILD_IDS='\u00b2' is not a list of ids; allowed: ids, comma-separated."),
        (b"T2F_MODEL=caf\xe9\n", ".env is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8."),
        (b"T2F_DEVICE=cuda\n", "T2F_DEVICE=cuda, but "),
    ],
)
def test_start_up_problems_are_one_line(tmp_path: Path, lines: bytes, message: str) -> None:
    """Each of these was a 17-83 line traceback (or "configuration ok"); now one line, before any model loads."""
    if message.startswith("T2F_DEVICE"):
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    for args in (("--check-config", "--offline"), ("--offline",)):  # the check, and a real start
        proc = run_bot_py(tmp_path, f"DISCORD_TOKEN={TOKEN}\n".encode() + lines, *args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"t2f bot: configuration error: {message}")
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert TOKEN not in proc.stderr + proc.stdout


def test_a_named_env_file_must_exist_and_unknown_names_are_warned(tmp_path: Path) -> None:
    proc = run_bot_py(tmp_path, b"", "--check-config", "--offline", "--env-file", "prod.env")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("t2f bot: configuration error: ") and "prod.env" in proc.stderr
    proc = run_bot_py(tmp_path, f"DISCORD_TOKEN={TOKEN}\nT2F_COOLDOWN=5\n".encode(), "--check-config", "--offline")
    assert proc.returncode == 0 and proc.stdout == "t2f bot: configuration ok\n", proc.stderr
    (warning,) = proc.stderr.strip().splitlines()  # the typo is said, with the setting it probably meant
    assert "WARNING" in warning and "T2F_COOLDOWN" in warning and "T2F_COOLDOWN_S" in warning


def test_help_answers_without_loading_models() -> None:
    code = (
        "import sys; sys.argv = ['bot.py', '--help']; import bot\n"
        "try:\n    bot.main()\nexcept SystemExit as exit:\n    print('exit', exit.code)\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'tensorflow', 'transformers') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("usage: bot.py [-h] [--check-config] [--offline]")
    assert proc.stdout.rstrip().endswith("exit 0\n[]")


class FakeDiscord:
    """A loopback stand-in for Discord's REST API: ``GET /api/v10/users/@me`` answers ``status``."""

    def __init__(self, status: int) -> None:
        import http.server
        import threading

        outer = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(f"{self.path} {self.headers['Authorization']}")
                body = b'{"id": "1", "username": "t2f-test"}' if status == 200 else b'{"message": "401: Unauthorized"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v10"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> tuple[str, str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v10", f"127.0.0.1:{port}"


async def test_verify_token_asks_discord_once() -> None:
    fake = FakeDiscord(200)
    try:
        assert await bot.verify_token(TOKEN, api_base=fake.url) == "t2f-test"
    finally:
        fake.close()
    assert fake.requests == [f"/api/v10/users/@me Bot {TOKEN}"]


async def test_verify_token_rejected_and_unreachable() -> None:
    fake = FakeDiscord(401)
    try:
        with pytest.raises(ConfigError) as rejected:
            await bot.verify_token(TOKEN, api_base=fake.url)
    finally:
        fake.close()
    assert rejected.value.user_message == bot.TOKEN_REJECTED
    url, host = closed_port_url()
    with pytest.raises(T2FError) as unreachable:
        await bot.verify_token(TOKEN, api_base=url)
    assert unreachable.value.user_message.startswith(f"Could not reach {host} (")
    assert unreachable.value.user_message.endswith("check this machine's network, DNS and firewall, then start again.")


@pytest.mark.parametrize("status", [401, None])
def test_token_is_checked_before_any_model_loads(
    status: int | None, clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong token or no network ends start-up in one line within seconds; run_bot (the models) never starts."""

    async def must_not_run(*args: object) -> None:
        raise AssertionError("the models were loaded before the token was checked")

    monkeypatch.setattr(bot, "run_bot", must_not_run)
    monkeypatch.setattr(bot, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("T2F_DB_PATH", str(clean_env / "t2f.sqlite3"))
    fake = FakeDiscord(status) if status else None
    url, host = (fake.url, "") if fake else closed_port_url()
    monkeypatch.setattr(bot, "DISCORD_API", url)
    try:
        code = bot.main([])
    finally:
        if fake:
            fake.close()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and TOKEN not in err
    if status == 401:
        assert code == 2 and err.strip() == f"t2f bot: configuration error: {bot.TOKEN_REJECTED}"
    else:
        assert code == 1 and err.startswith(f"t2f bot: error: Could not reach {host} (")
