"""Log lines: the JSON format (every stderr line of the real entry points), the third-party noise filter,
and the per-job lines of the job service. tests/test_docker_start.py checks a whole bot start in JSON."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from test_service import FakeBackend, route

from t2f.faces import FaceRequest
from t2f.logs import JsonFormatter, NoiseFilter
from t2f.serve.jobs import JobRequest
from t2f.serve.service import JobService

ROOT = Path(__file__).resolve().parents[1]


def record(name: str, message: str, level: int = logging.WARNING, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, message, None, None)
    made.__dict__.update(extra)
    return made


def test_json_lines_carry_time_level_logger_message_and_extra_fields() -> None:
    line = JsonFormatter().format(record("t2f.jobs", "job abc queued", logging.INFO, job_id="abc", seconds=0.0))
    data = json.loads(line)
    assert data.pop("time").endswith("+00:00")
    assert data == {"level": "INFO", "logger": "t2f.jobs", "message": "job abc queued", "job_id": "abc", "seconds": 0.0}
    assert "\n" not in line


def test_noise_filter_drops_known_third_party_notices_only() -> None:
    noise = NoiseFilter()
    assert not noise.filter(record("discord.client", "PyNaCl is not installed, voice will NOT be supported"))
    assert not noise.filter(record("transformers.utils", "torchvision is not available, falling back"))
    assert noise.filter(record("discord.client", "logging in using static token"))
    assert noise.filter(record("t2f.bot", "models warmed up in 2.0 s"))
    assert noise.filter(record("some.lib", "torchvision crashed", logging.ERROR))  # errors always pass


async def test_one_structured_line_per_job_state_and_the_prompt_only_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = JobService(route(FakeBackend(steps=2)))
    request = JobRequest("job1", user_id=7, face=FaceRequest("a secret prompt"), guild_id=42)
    with caplog.at_level(logging.INFO, logger="t2f.jobs"):
        await service.submit(request).result
    lines = [r for r in caplog.records if r.name == "t2f.jobs"]
    assert [(r.event, getattr(r, "status", None)) for r in lines] == [  # type: ignore[attr-defined]
        ("queued", None),
        ("started", None),
        ("exporting", None),
        ("finished", "done"),
    ]
    assert all(r.job_id == "job1" and r.guild_id == 42 and r.seconds >= 0 for r in lines)  # type: ignore[attr-defined]
    assert lines[1].batch_size == 1  # type: ignore[attr-defined]
    assert lines[0].getMessage() == "job job1 queued (guild 42; 0.0 s)"
    assert lines[-1].getMessage().startswith("job job1 finished (guild 42; done, ")
    assert "secret" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="t2f.jobs"):
        await service.submit(JobRequest("job2", user_id=7, face=FaceRequest("a secret prompt"))).result
    assert "job job2 prompt 'a secret prompt' negative ''" in caplog.text
    assert json.loads(JsonFormatter().format(caplog.records[0]))["event"] == "queued"


def test_stray_stderr_lines_become_json_records() -> None:
    """What a library writes to stderr itself (its own handler, a progress bar) is wrapped; JSON passes as is."""
    import io

    from t2f.logs import JsonLines

    below = io.StringIO()
    stderr = JsonLines(below)
    stderr.write('{"level": "INFO", "message": "already a record"}\n')
    stderr.write("Loading pipeline components...:   0%|  | 0/7\rLoading pipeline components...: 100%|##| 7/7\n")
    stderr.write("[transformers] a notice in two ")
    stderr.write("writes\n\n{not json\n")
    stderr.write("no newline at the end")
    stderr.finish()
    records = [json.loads(line) for line in below.getvalue().splitlines()]
    assert records[0] == {"level": "INFO", "message": "already a record"}
    assert [(r["level"], r["logger"], r["message"]) for r in records[1:]] == [
        ("WARNING", "stderr", "Loading pipeline components...: 100%|##| 7/7"),  # the bar's last redraw only
        ("WARNING", "stderr", "[transformers] a notice in two writes"),
        ("WARNING", "stderr", "{not json"),
        ("WARNING", "stderr", "no newline at the end"),
    ]


def run_entry_point(
    tmp_path: Path, args: list[str], env_file: bytes = b"", **env: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / ".env").write_bytes(env_file)
    return subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **env},
    )


def json_lines(stderr: str) -> list[dict[str, object]]:
    """Every line of ``stderr`` parsed; a line that is not a JSON object fails the test, quoted."""
    records = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line on stderr: {line!r}")
        assert isinstance(record, dict) and {"time", "level", "logger", "message"} <= set(record), line
        records.append(record)
    return records


BOT = str(ROOT / "bot.py")
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"


@pytest.mark.parametrize(
    ("args", "env_file", "env", "code", "logger", "message"),
    [
        (  # a setting refused: the line comes before the settings (and so the format) are parsed
            [BOT, "--check-config", "--offline"],
            f"DISCORD_TOKEN={TOKEN}\nT2F_LOG_FORMAT=json\nT2F_STEPS=500\n".encode(),
            {},
            2,
            "t2f.bot",
            "t2f bot: configuration error: T2F_STEPS=500 is out of range; allowed: 5..50.",
        ),
        (  # .env unreadable: the real environment says JSON
            [BOT, "--offline"],
            b"T2F_MODEL=caf\xe9\n",
            {"T2F_LOG_FORMAT": "json"},
            2,
            "t2f.bot",
            "t2f bot: configuration error: .env is not UTF-8 text (byte 0xe9 on line 1); save it as UTF-8.",
        ),
        (
            ["-m", "t2f", "generate", "a face", "--steps", "0"],
            b"T2F_LOG_FORMAT=json\n",
            {},
            2,  # a value the command line refuses: the exit code of every bad argument
            "t2f",
            "t2f: error: Steps 0 is not allowed; use 1 to 150.",
        ),
    ],
)
def test_the_line_that_ends_a_failed_run_is_json(
    tmp_path: Path, args: list[str], env_file: bytes, env: dict[str, str], code: int, logger: str, message: str
) -> None:
    done = run_entry_point(tmp_path, args, env_file, **env)
    assert done.returncode == code
    (record,) = json_lines(done.stderr)
    assert (record["level"], record["logger"], record["message"]) == ("ERROR", logger, message)
    assert TOKEN not in done.stderr


def test_generate_in_json_mode_has_no_progress_bar_and_only_json_lines(tmp_path: Path, tiny_sd: Path) -> None:
    args = ["-m", "t2f", "generate", "a face", "--model", str(tiny_sd), "--steps", "2", "--size", "64"]
    args += ["--image-only", "--seed", "1"]
    settings = {"T2F_SAFETY_CHECKER": "off", "T2F_OUTPUT_DIR": str(tmp_path / "out"), "T2F_LOG_LEVEL": "info"}
    text = run_entry_point(tmp_path, args, **settings)
    assert text.returncode == 0, text.stderr
    # Over a pipe (a log file, a collector) no bar is drawn in text mode either: every redraw would be a line.
    assert "denoising" not in text.stderr and "Loading pipeline components" not in text.stderr
    done = run_entry_point(tmp_path, args, **settings, T2F_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    records = json_lines(done.stderr)
    assert not any("denoising" in str(r["message"]) or "Loading" in str(r["message"]) for r in records)
    assert done.stdout.startswith("wrote image.png, metadata.json to ")
