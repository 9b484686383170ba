"""Prometheus metrics of the job service, scraped at ``GET /metrics`` on the bot's web server.

Each :class:`ServiceMetrics` has its own registry (no process-wide state: two services, or two tests,
never mix their counts). The service reports jobs as they start and finish; the Discord cog reports
delivery times and late acknowledgements; queue depth and GPU memory are read when scraped.

What an operator watches (README "Metrics"): ``t2f_queue_depth`` (waiting faces, per server) and
``t2f_queue_depth_all_servers``, ``t2f_jobs_total`` by outcome, ``t2f_stage_seconds`` (queue wait, paint,
detect, PRNet, export, delivery), ``t2f_batch_size``, ``t2f_longest_running_job_seconds``,
``t2f_disk_free_bytes``, ``t2f_gpu_memory_bytes`` (in use and peak), ``t2f_warmup_seconds`` and
``t2f_interactions_acknowledged_late_total``. The alert rules in ``ops/alerts.yaml`` read them.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from t2f.serve.jobs import JobResult
    from t2f.serve.queue import JobHandle

# Seconds: from a TAESD preview (tens of ms) to a long queue wait (minutes).
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
# The stage names of a face report's timings, as the dashboard groups them.
REPORT_STAGES = {
    "text_to_image": "paint",
    "safety_check": "safety",
    "detect": "detect",
    "prnet": "prnet",
    "postprocess": "postprocess",
    "export_obj": "export",
    "export_glb": "export",
    "preview": "export",
    "turntable": "export",
}


class QueueCollector(Collector):
    """Waiting faces per server (``guild="none"`` for the CLI and the web app), in total, and those that may start
    now (their server is not paused), read at scrape."""

    def __init__(self, waiting: Callable[[], list[JobHandle]], runnable: Callable[[], list[JobHandle]]) -> None:
        self.waiting = waiting
        self.runnable = runnable

    def collect(self) -> Iterator[Metric]:
        per_server = Tally(str(h.job.guild_id) if h.job.guild_id is not None else "none" for h in self.waiting())
        depth = GaugeMetricFamily("t2f_queue_depth", "Faces waiting for the worker, per server.", labels=["guild"])
        for guild, count in sorted(per_server.items()):
            depth.add_metric([guild], count)
        yield depth
        # Not `_total`: that suffix says counter, and this goes down too (promtool check metrics refuses it).
        yield GaugeMetricFamily(
            "t2f_queue_depth_all_servers", "Faces waiting for the worker, all servers.", value=sum(per_server.values())
        )
        # What the "queue stuck" alert reads: a paused server's faces wait by choice, not because the worker hangs.
        yield GaugeMetricFamily(
            "t2f_queue_runnable",
            "Faces waiting that may start now (their server is not paused).",
            value=len(self.runnable()),
        )


class RunningJobsCollector(Collector):
    """How long the longest-running started job has been in its current batch, counting its export.

    A worker thread that hangs (a stuck CUDA call, a deadlock) leaves this growing past the job timeout,
    which a live worker never lets a job outlive by more than a step: the "GPU thread stalled" alert.
    """

    def __init__(self, started: Mapping[str, float]) -> None:
        self.started = started

    def collect(self) -> Iterator[Metric]:
        since = list(self.started.values())  # a copy: the event loop adds and removes jobs meanwhile
        longest = time.monotonic() - min(since) if since else 0.0
        yield GaugeMetricFamily(
            "t2f_longest_running_job_seconds",
            "Seconds the longest-running unfinished job has spent in its current batch and export (0: none).",
            value=longest,
        )


def _existing(folder: Path) -> Path:
    """``folder``, or its nearest parent that exists (an output folder is created with its first face)."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


class DiskCollector(Collector):
    """Free and total bytes of each filesystem t2f writes to, once per filesystem, read at scrape.

    ``holds`` names what lives there (``database,models,outputs`` when, as in the Docker image, one volume
    holds them all), so one full disk is one series and one alert.
    """

    def __init__(self, folders: Mapping[str, Path]) -> None:
        self.folders = folders

    def collect(self) -> Iterator[Metric]:
        by_device: dict[int, tuple[Path, list[str]]] = {}
        for name, folder in sorted(self.folders.items()):
            existing = _existing(folder)
            try:
                device = existing.stat().st_dev
            except OSError:
                continue
            by_device.setdefault(device, (existing, []))[1].append(name)
        free = GaugeMetricFamily("t2f_disk_free_bytes", "Bytes free for t2f's files.", labels=["holds"])
        size = GaugeMetricFamily("t2f_disk_size_bytes", "Size of the filesystem of t2f's files.", labels=["holds"])
        for folder, names in by_device.values():
            try:
                usage = shutil.disk_usage(folder)
            except OSError:
                continue
            free.add_metric([",".join(names)], float(usage.free))
            size.add_metric([",".join(names)], float(usage.total))
        yield free
        yield size


class GpuMemoryCollector(Collector):
    """CUDA memory in use and the peak since start, when torch is loaded and sees a GPU (else nothing)."""

    def collect(self) -> Iterator[Metric]:
        torch = sys.modules.get("torch")  # never import torch for a scrape: only report what is loaded
        if torch is None or not torch.cuda.is_available():
            return
        memory = GaugeMetricFamily("t2f_gpu_memory_bytes", "CUDA memory held by tensors.", labels=["kind"])
        memory.add_metric(["in_use"], float(torch.cuda.memory_allocated()))
        memory.add_metric(["peak"], float(torch.cuda.max_memory_allocated()))
        yield memory


class ServiceMetrics:
    """Every metric of one bot (or one ``t2f serve``), in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter("t2f_jobs", "Jobs by how they ended.", ["outcome"], registry=self.registry)
        self.stage_seconds = Histogram(
            "t2f_stage_seconds",
            "Seconds a face spent in each stage.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "t2f_batch_size",
            "Jobs painted together in one denoising loop.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.warmup_seconds = Gauge("t2f_warmup_seconds", "Seconds the start-up warm-up took.", registry=self.registry)
        self.late_acks = Counter(
            "t2f_interactions_acknowledged_late", "Interactions answered after Discord's 3 s.", registry=self.registry
        )
        self.repaints = Counter(
            "t2f_repaints", "Images painted again for lack of a usable face.", ["reason"], registry=self.registry
        )
        self.painting = Counter(
            "t2f_painting_seconds", "Seconds the GPU thread spent painting (its busy time).", registry=self.registry
        )
        self.registry.register(GpuMemoryCollector())
        self.running_since: dict[str, float] = {}  # started, unfinished job id -> when its batch started
        self.registry.register(RunningJobsCollector(self.running_since))

    def watch_queue(
        self, waiting: Callable[[], list[JobHandle]], runnable: Callable[[], list[JobHandle]] | None = None
    ) -> None:
        """Report ``waiting()`` (the service's queue) as the queue depth at every scrape, and ``runnable()`` (those
        whose server is not paused; default: all of them)."""
        self.registry.register(QueueCollector(waiting, runnable or waiting))

    def watch_disk(self, folders: Mapping[str, Path]) -> None:
        """Report the free space under ``folders`` (by what they hold: ``outputs``, ``database``…) at every scrape."""
        self.registry.register(DiskCollector(folders))

    # -- what the service reports -------------------------------------------------------------------
    def batch_started(self, handles: list[JobHandle]) -> None:
        self.batch_size.observe(len(handles))
        now = time.monotonic()
        for handle in handles:
            self.stage_seconds.labels("queue_wait").observe(max(0.0, now - handle.queued_at))
            self.running_since[handle.job.job_id] = now  # a repaint's new batch starts its clock again

    def painted(self, seconds: float) -> None:
        self.painting.inc(seconds)

    def repainted(self, note: str) -> None:
        self.repaints.labels(note.split(" in ")[0]).inc()

    def job_finished(self, result: JobResult) -> None:
        self.running_since.pop(result.job_id, None)
        self.jobs.labels(str(result.status)).inc()
        if result.report is not None:
            self.observe_stages(result.report.timings_s)

    def observe_stages(self, timings: Mapping[str, float]) -> None:
        """A face report's stage times, grouped as :data:`REPORT_STAGES` names them."""
        grouped: dict[str, float] = {}
        for name, seconds in timings.items():
            if name in REPORT_STAGES:
                grouped[REPORT_STAGES[name]] = grouped.get(REPORT_STAGES[name], 0.0) + seconds
        for stage, seconds in grouped.items():
            self.stage_seconds.labels(stage).observe(seconds)

    # -- what the front end reports -----------------------------------------------------------------
    def delivered(self, seconds: float) -> None:
        self.stage_seconds.labels("delivery").observe(seconds)

    def acknowledged_late(self) -> None:
        self.late_acks.inc()

    def render(self) -> tuple[bytes, str]:
        """The scrape: Prometheus' text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
