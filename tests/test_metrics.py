"""Prometheus metrics: counted and timed as a /face goes through the bot, scraped over HTTP at /metrics
on its own listener (T2F_METRICS_PORT)."""

from __future__ import annotations

import aiohttp
import pytest
from discord_fixtures import PhotoTextToImage, moderator, world
from prometheus_client.parser import text_string_to_metric_families

from t2f.faces import FaceRequest
from t2f.report import FaceReport
from t2f.serve.jobs import JobResult, JobStatus
from t2f.serve.metrics import ServiceMetrics
from t2f.web.metrics_listener import MetricsListener


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_have_their_own_registry_and_group_stage_times() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    timings = {"text_to_image": 1.5, "detect": 0.08, "prnet": 0.01, "export_obj": 0.02, "export_glb": 0.01, "load": 9.0}
    report = FaceReport(request=FaceRequest("x"), timings_s=timings)
    first.job_finished(JobResult("a" * 12, JobStatus.DONE, report=report))
    first.job_finished(JobResult("b" * 12, JobStatus.FAILED))
    scraped = samples(first.render()[0].decode())
    assert scraped[("t2f_jobs_total", (("outcome", "done"),))] == 1.0
    assert scraped[("t2f_jobs_total", (("outcome", "failed"),))] == 1.0
    assert scraped[("t2f_stage_seconds_sum", (("stage", "export"),))] == pytest.approx(0.03)
    assert scraped[("t2f_stage_seconds_sum", (("stage", "paint"),))] == 1.5
    assert not any(labels == (("stage", "load"),) for _, labels in scraped)  # not a stage of a face
    assert ("t2f_jobs_total", (("outcome", "done"),)) not in samples(second.render()[0].decode())


async def test_a_face_is_counted_and_timed_at_the_metrics_endpoint(
    simcord_env, photo: PhotoTextToImage, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    service = simcord_env.bot.service
    listener = MetricsListener(service.metrics.render, host="127.0.0.1", port=0)
    await listener.start()
    try:
        guild, channel, alice = world(simcord_env)
        mod = moderator(simcord_env, guild)
        await mod.slash(channel, "faceadmin pause")
        await alice.slash(channel, "face", prompt="a smiling astronaut")
        async with aiohttp.ClientSession() as session, session.get(listener.url) as response:
            waiting = samples(await response.text())
        assert waiting[("t2f_queue_depth", (("guild", str(guild.id)),))] == 1.0
        assert waiting[("t2f_queue_depth_total", ())] == 1.0
        await mod.slash(channel, "faceadmin resume")
        async with aiohttp.ClientSession() as session, session.get(listener.url) as response:
            assert response.status == 200 and response.content_type == "text/plain"
            scraped = samples(await response.text())
    finally:
        await listener.stop()
    assert scraped[("t2f_jobs_total", (("outcome", "done"),))] == 1.0
    for stage in ("queue_wait", "paint", "detect", "prnet", "export", "delivery"):
        assert scraped[("t2f_stage_seconds_count", (("stage", stage),))] == 1.0, stage
    assert scraped[("t2f_batch_size_count", ())] == 1.0 and scraped[("t2f_batch_size_sum", ())] == 1.0
    assert scraped[("t2f_queue_depth_total", ())] == 0.0
    assert scraped[("t2f_interactions_acknowledged_late_total", ())] == 0.0
    assert ("t2f_gpu_memory_bytes", (("kind", "in_use"),)) not in scraped  # no GPU here: no made-up numbers
    assert photo.prompts == ["a smiling astronaut"]


def test_the_dashboard_reads_only_metrics_that_exist() -> None:
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[1] / "ops" / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"\bt2f_[a-z_]+", expr)}
    metrics = ServiceMetrics()
    from types import SimpleNamespace

    metrics.watch_queue(lambda: [SimpleNamespace(job=SimpleNamespace(guild_id=5))])  # type: ignore[arg-type, return-value]
    metrics.job_finished(JobResult("c" * 12, JobStatus.DONE, report=FaceReport(timings_s={"prnet": 0.1})))
    metrics.repainted("no face was found in the first image")
    metrics.batch_size.observe(2)
    exported = {
        s.name for family in text_string_to_metric_families(metrics.render()[0].decode()) for s in family.samples
    } | {"t2f_gpu_memory_bytes"}  # exported only with a GPU
    assert used and used <= exported, used - exported
