from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import bot
from t2f.errors import ConfigError

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
        [sys.executable, str(ROOT / "bot.py"), "--check-config"], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "t2f bot: configuration ok"
    assert token not in proc.stdout + proc.stderr
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={token}\nT2F_STEPS=500\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "--check-config"], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == "t2f bot: configuration error: T2F_STEPS=500 is out of range; allowed: 1..150."
