"""Prometheus metrics: counted and timed as a /face goes through the bot, scraped over HTTP at /metrics
on its own listener (T2F_METRICS_PORT)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from discord_fixtures import PhotoTextToImage, moderator, world
from prometheus_client.parser import text_string_to_metric_families

from t2f.faces import FaceRequest
from t2f.report import FaceReport
from t2f.serve.jobs import JobResult, JobStatus
from t2f.serve.metrics import ServiceMetrics
from t2f.web.metrics_listener import MetricsListener

ROOT = Path(__file__).resolve().parents[1]


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
        assert waiting[("t2f_queue_depth_all_servers", ())] == 1.0
        assert waiting[("t2f_queue_runnable", ())] == 0.0  # held by its server's moderators: not a stuck queue
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
    assert scraped[("t2f_queue_depth_all_servers", ())] == 0.0
    assert scraped[("t2f_longest_running_job_seconds", ())] == 0.0  # finished: nothing is running
    assert scraped[("t2f_interactions_acknowledged_late_total", ())] == 0.0
    assert ("t2f_gpu_memory_bytes", (("kind", "in_use"),)) not in scraped  # no GPU here: no made-up numbers
    assert photo.prompts == ["a smiling astronaut"]


def full_scrape(tmp_path: Path) -> str:
    """A scrape with every metric t2f exports holding a value (GPU memory only exists with a GPU)."""
    metrics = ServiceMetrics()
    metrics.watch_queue(lambda: [SimpleNamespace(job=SimpleNamespace(guild_id=5))])  # type: ignore[arg-type, return-value]
    metrics.watch_disk({"outputs": tmp_path / "outputs", "database": tmp_path})
    metrics.batch_started([SimpleNamespace(job=SimpleNamespace(job_id="d" * 12), queued_at=0.0)])  # type: ignore[list-item]
    metrics.job_finished(JobResult("c" * 12, JobStatus.DONE, report=FaceReport(timings_s={"prnet": 0.1})))
    metrics.repainted("no face was found in the first image")
    metrics.warmup_seconds.set(3.5)
    metrics.painted(0.3)
    metrics.acknowledged_late()
    metrics.delivered(0.4)
    return metrics.render()[0].decode()


def exported_names(tmp_path: Path) -> set[str]:
    names = {s.name for family in text_string_to_metric_families(full_scrape(tmp_path)) for s in family.samples}
    return names | {"t2f_gpu_memory_bytes"}  # only with a GPU


def test_the_dashboard_reads_only_metrics_that_exist(tmp_path: Path) -> None:
    dashboard = json.loads((ROOT / "ops" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"\bt2f_[a-z_]+", expr)}
    assert used and used <= exported_names(tmp_path), used - exported_names(tmp_path)


def test_the_longest_running_job_is_timed_from_its_batch_until_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the "GPU thread stalled" alert reads: a job's age in its batch; 0 once nothing runs."""
    import t2f.serve.metrics as metrics_module

    now = [1000.0]
    monkeypatch.setattr(metrics_module.time, "monotonic", lambda: now[0])
    metrics = ServiceMetrics()

    def longest() -> float:
        return samples(metrics.render()[0].decode())[("t2f_longest_running_job_seconds", ())]

    def handle(job_id: str) -> SimpleNamespace:
        return SimpleNamespace(job=SimpleNamespace(job_id=job_id), queued_at=now[0])

    assert longest() == 0.0
    metrics.batch_started([handle("a"), handle("b")])  # type: ignore[list-item]
    now[0] += 30.0
    assert longest() == 30.0
    metrics.job_finished(JobResult("a", JobStatus.DONE))
    metrics.batch_started([handle("c")])  # type: ignore[list-item]
    now[0] += 5.0
    assert longest() == 35.0  # "b" still runs
    metrics.job_finished(JobResult("b", JobStatus.FAILED))
    assert longest() == 5.0
    metrics.batch_started([handle("c")])  # a repaint: a new batch, a new clock
    assert longest() == 0.0
    metrics.job_finished(JobResult("c", JobStatus.DONE))
    assert longest() == 0.0


def test_disk_space_is_one_series_per_filesystem(tmp_path: Path) -> None:
    metrics = ServiceMetrics()
    metrics.watch_disk({"outputs": tmp_path / "not-yet" / "outputs", "database": tmp_path})
    scraped = samples(metrics.render()[0].decode())
    free = {labels: value for (name, labels), value in scraped.items() if name == "t2f_disk_free_bytes"}
    size = {labels: value for (name, labels), value in scraped.items() if name == "t2f_disk_size_bytes"}
    usage = shutil.disk_usage(tmp_path)
    assert list(free) == list(size) == [(("holds", "database,outputs"),)]  # a missing folder counts where it will be
    assert size[(("holds", "database,outputs"),)] == usage.total
    assert 0 < free[(("holds", "database,outputs"),)] <= usage.total
