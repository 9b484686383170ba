"""The Ray Serve backend on a real local Ray cluster (CPU only, loopback only, two logical GPUs).

The cluster and the production deployment (:func:`t2f.serve.ray_deployment.face_deployment`, two
replicas) start once for the module. Replicas build their pipeline from :class:`PhotoReplica`, a
picklable factory: PRNet with random weights, the real UV data and export, and the astronaut photo
in place of Stable Diffusion. The retry rules are also checked against a scripted stand-in handle.
Deselect with ``-m "not ray"``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trimesh
from discord_fixtures import attachment_bytes, callbacks, original_edits, world
from route_helpers import RecordingWatch, local_stages

from t2f.config import Settings
from t2f.errors import ConfigError
from t2f.faces import FaceRequest
from t2f.serve.files import FileWriter
from t2f.serve.jobs import FaceJob, JobPhase, JobProgress, JobRequest, JobResult, JobStatus, Outcome, Stage
from t2f.serve.ray_backend import RayFaceBackend
from t2f.serve.ray_deployment import WorkerUpdate
from t2f.serve.route import Route
from t2f.serve.warmup import LocalStages

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every Ray socket on 127.0.0.1 (../shared/docs/scale-out.md)
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}


@dataclasses.dataclass(frozen=True)
class PhotoReplica:
    """Picklable replica factory: the real stages with the astronaut photo as the painter's text-to-image stage."""

    prnet_dir: str
    step_seconds: float = 0.0

    def __call__(self) -> LocalStages:
        from discord_fixtures import PhotoTextToImage

        from t2f.build import load_face_pipeline

        photo = PhotoTextToImage(step_seconds=self.step_seconds)
        pipeline = load_face_pipeline(Settings(prnet_dir=self.prnet_dir), text_to_image=photo, crop="whole")
        return local_stages(pipeline, crop="whole")


@pytest.fixture(scope="module")
def ray_backend(prnet_dir: Path) -> Iterator[RayFaceBackend]:
    """A local cluster with two logical GPUs and the production deployment at two replicas, started once."""
    from ray import serve

    saved = {name: os.environ.get(name) for name in [*LOOPBACK_ENV, "PYTHONPATH"]}
    # Replicas import the factory from this folder; the raylet passes the environment on to them.
    path = [str(ROOT), str(ROOT / "tests"), *filter(None, [saved["PYTHONPATH"]])]
    os.environ.update(LOOPBACK_ENV, PYTHONPATH=os.pathsep.join(path))
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        backend = RayFaceBackend.connect(
            PhotoReplica(str(prnet_dir), step_seconds=0.15), address="", min_replicas=2, max_replicas=2
        )
        backend.backoff_s = (0.2, 1.0)
        yield backend
    finally:
        serve.shutdown()
        ray.shutdown()
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


def job(job_id: str, *, user_id: int = 1, steps: int = 3) -> JobRequest:
    return JobRequest(job_id, user_id, FaceRequest(f"a face {job_id}", seed=1, steps=steps, size=256))


def ray_route(backend: RayFaceBackend, files: object | None = None) -> Route:
    """The Ray route as t2f.build makes it: paint and faces on the cluster, the files on this machine."""
    return Route(paint=backend, faces=None, files=files or FileWriter())  # type: ignore[arg-type]


def paint(backend: RayFaceBackend, jobs: list[JobRequest], watch: RecordingWatch | None = None) -> list[Outcome]:
    return backend.paint([FaceJob(j) for j in jobs], watch or RecordingWatch())


# -- the bot through SimCord, on the cluster ------------------------------------------------------


@pytest.fixture
async def simcord_bot(settings: Settings, store, ray_backend: RayFaceBackend):  # type: ignore[no-untyped-def]
    """The real bot (cogs, policy, service) on the serving stack, with the Ray route behind its job service."""
    from bot import T2FBot
    from t2f.stack import open_stack

    async with open_stack(settings, ray_route(ray_backend), store=store) as stack:
        yield T2FBot.on(stack)


@pytest.mark.simcord(settle_timeout=120)
async def test_face_is_painted_on_a_replica_and_delivered_through_discord(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face", prompt="a smiling astronaut")
    assert result.acknowledged and not result.ephemeral
    assert callbacks(simcord_env) == [5]
    assert original_edits(simcord_env)[0].startswith("⏳ Queued as #1 · about ")
    message = result.response
    (embed,) = message.embeds
    assert embed.title == "a smiling astronaut"
    assert {a.filename for a in message.attachments} == {"preview.jpg", "turntable.gif", "image.png", "face.obj"}
    mesh = trimesh.load(io.BytesIO(await attachment_bytes(message, "face.obj")), file_type="obj", process=False)
    assert mesh.faces.shape == (86_906, 3)
    job_id = embed.footer.text.removeprefix("job ")
    (replica,) = simcord_env.bot.service.route.paint.replicas_seen[job_id]
    host, pid = replica.rsplit(":", 1)
    assert host == socket.gethostname() and int(pid) != os.getpid()  # painted in a replica's process


# -- bursts and faults on the cluster --------------------------------------------------------------


async def test_two_replicas_both_serve_a_burst_and_each_face_gets_its_page(
    ray_backend: RayFaceBackend, tmp_path: Path
) -> None:
    from t2f.serve.service import JobService
    from t2f.web.links import LinkSigner
    from t2f.web.pages import FacePages, PageKeepingFiles

    pages = FacePages(tmp_path / "out", LinkSigner(b"secret"), keep_s=3600.0)
    route = ray_route(ray_backend, PageKeepingFiles(FileWriter(), pages))
    service = JobService(route, max_batch=4, capacity=50, job_timeout_s=300)
    jobs = [job(f"{user:06x}{n:06x}", user_id=user) for user in range(4) for n in range(2)]  # page-shaped ids
    handles = [service.submit(j) for j in jobs]
    results: list[JobResult] = await asyncio.gather(*(h.result for h in handles))
    await service.shutdown()
    assert [r.job_id for r in results] == [j.job_id for j in jobs]
    assert all(r.status == JobStatus.DONE and "face.obj" in r.files for r in results)
    replicas = {replica for j in jobs for replica in ray_backend.replicas_seen[j.job_id]}
    assert len(replicas) == 2  # each batch of 4 was split 2 + 2 over the two replicas
    for j in jobs:  # the files are written here, so a face painted on a replica has its 3D page too
        assert {"face.glb", "face.obj", "metadata.json"} <= {p.name for p in (tmp_path / "out" / j.job_id).iterdir()}


async def test_a_replica_killed_mid_batch_has_its_jobs_finished_once_elsewhere(ray_backend: RayFaceBackend) -> None:
    jobs = [job(f"kill{n}", steps=6) for n in range(4)]
    killed: list[str] = []

    class KillingWatch(RecordingWatch):
        def report(self, progress: JobProgress) -> None:
            super().report(progress)
            if progress.phase == JobPhase.PAINTING and not killed:  # the first chunk to paint loses its replica
                killed.append(ray_backend.replicas_seen[progress.job_id][-1])
                os.kill(int(killed[0].rsplit(":", 1)[1]), signal.SIGKILL)

    watch = KillingWatch()
    outcomes = await asyncio.to_thread(paint, ray_backend, jobs, watch)
    assert [o.job_id for o in outcomes] == [j.job_id for j in jobs]  # one outcome per job, in order
    assert all(isinstance(o, FaceJob) and o.next_stage is Stage.FILES for o in outcomes)  # found, for their files
    assert sorted(o.job_id for o in watch.handed) == sorted(j.job_id for j in jobs)  # each handed on as it came
    moved = [j.job_id for j in jobs if ray_backend.replicas_seen[j.job_id][0] == killed[0]]
    assert len(moved) == 2  # the killed replica's chunk
    for job_id in moved:
        _, *later = ray_backend.replicas_seen[job_id]
        assert later and killed[0] not in later  # finished on another replica


def test_an_unreachable_cluster_is_one_clear_line() -> None:
    from t2f.build import load_route

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfigError) as caught:
        load_route(Settings(backend="ray", ray_address=f"127.0.0.1:{port}"))
    assert caught.value.user_message == (
        f"T2F_RAY_ADDRESS='127.0.0.1:{port}': no Ray cluster answers there; start the head node "
        "(`ray start --head`) or leave T2F_RAY_ADDRESS empty for a local cluster."
    )
    with pytest.raises(ConfigError) as caught:
        load_route(Settings(backend="ray", ray_min_replicas=3, ray_max_replicas=2))
    assert caught.value.user_message.startswith("T2F_RAY_MAX_REPLICAS=2 is below T2F_RAY_MIN_REPLICAS=3;")


# -- the retry rules against a scripted handle (no cluster) ---------------------------------------


class ScriptedHandle:
    """Stands in for a DeploymentHandle: each call plays the next script ("unreachable", "dies", "ok", "ok1")."""

    def __init__(self, *scripts: str) -> None:
        self.scripts = list(scripts)
        self.calls: list[list[str]] = []
        self.run = self

    def options(self, *, stream: bool) -> ScriptedHandle:
        return self

    def remote(self, jobs: list[FaceJob]) -> ScriptedStream:
        self.calls.append([j.job_id for j in jobs])
        return ScriptedStream(self.scripts.pop(0), jobs, len(self.calls))


class ScriptedStream:
    def __init__(self, script: str, jobs: list[FaceJob], call: int) -> None:
        self.script, self.jobs, self.replica = script, jobs, f"host:{call}"

    def cancel(self) -> None:
        pass

    async def __aiter__(self) -> AsyncIterator[WorkerUpdate]:  # type: ignore[misc]
        if self.script == "unreachable":
            raise ConnectionError("no cluster")
        yield WorkerUpdate(self.replica)
        yield WorkerUpdate(
            self.replica, progress=tuple(JobProgress(j.job_id, JobPhase.PAINTING, 1, 3) for j in self.jobs)
        )
        done = self.jobs[:1] if self.script == "ok1" else self.jobs
        if self.script != "dies":
            yield WorkerUpdate(self.replica, outcomes=tuple(JobResult(j.job_id, JobStatus.DONE) for j in done))
        if self.script in ("dies", "ok1"):
            raise RuntimeError("ActorDiedError stand-in")


def scripted(*scripts: str) -> RayFaceBackend:
    return RayFaceBackend(ScriptedHandle(*scripts), chunks=1, backoff_s=(0.01, 0.02))


def test_an_unreachable_cluster_later_makes_jobs_wait_then_finish_once() -> None:
    backend = scripted("unreachable", "unreachable", "ok")
    watch = RecordingWatch()
    results = paint(backend, [job("w1"), job("w2")], watch)
    assert [(r.job_id, r.status) for r in results] == [("w1", JobStatus.DONE), ("w2", JobStatus.DONE)]  # type: ignore[union-attr]
    waiting = [p.job_id for p in watch.progress if p.phase == JobPhase.WAITING_FOR_WORKER]
    assert waiting == ["w1", "w2", "w1", "w2"]  # members saw that they wait, once per failed call
    assert backend.handle.calls == [["w1", "w2"]] * 3


def test_a_job_whose_result_arrived_is_not_sent_again() -> None:
    backend = scripted("ok1", "ok")
    results = paint(backend, [job("a"), job("b")])
    assert [(r.job_id, r.status) for r in results] == [("a", JobStatus.DONE), ("b", JobStatus.DONE)]  # type: ignore[union-attr]
    assert backend.handle.calls == [["a", "b"], ["b"]]
    assert backend.replicas_seen["a"] == ["host:1"] and backend.replicas_seen["b"] == ["host:1", "host:2"]


def test_replicas_lost_too_often_fail_the_job_with_one_sentence() -> None:
    backend = scripted("ok1", "dies", "dies")
    results = paint(backend, [job("x"), job("y")])
    assert results[0].status == JobStatus.DONE  # type: ignore[union-attr]  # back before the first replica died
    assert results[1] == JobResult(
        "y",
        JobStatus.FAILED,
        user_message="The GPU worker making your face stopped 3 times (job y); please try again in a few minutes.",
    )
    assert backend.handle.calls == [["x", "y"], ["y"], ["y"]]


def test_waiting_ends_at_the_retry_window_and_cancelled_jobs_stop() -> None:
    backend = scripted(*["unreachable"] * 50)
    backend.window_s = 0.05
    (result,) = paint(backend, [job("late")])
    assert isinstance(result, JobResult) and result.status == JobStatus.FAILED
    assert result.user_message == "No GPU worker was free for 0 minutes (job late); please try again later."
    backend = scripted("unreachable")
    (result,) = paint(backend, [job("gone")], RecordingWatch(cancelled=lambda _: True))
    assert isinstance(result, JobResult) and result.status == JobStatus.CANCELLED and backend.handle.calls == []
