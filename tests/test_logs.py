"""Log lines: the JSON format, the third-party noise filter, and the per-job lines of the job service."""

from __future__ import annotations

import json
import logging

import pytest
from test_service import FakeBackend, route

from t2f.faces import FaceRequest
from t2f.logs import JsonFormatter, NoiseFilter
from t2f.serve.jobs import JobRequest
from t2f.serve.service import JobService


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
