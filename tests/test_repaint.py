"""A usable face every time: portrait framing, the face gate and automatic repaints, through the job
service and the bot (SimCord). The painter is a stand-in that returns real photos in a set order."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from discord_fixtures import PhotoTextToImage, attachment_bytes, original_edits, world
from PIL import Image
from skimage.data import astronaut, coffee

from t2f.faces import FaceImage, FaceRequest, StepProgress
from t2f.report import FaceReport
from t2f.serve.faces import next_seed
from t2f.serve.jobs import FaceJob, JobRequest, JobResult, JobStatus
from t2f.serve.route import Route
from t2f.serve.service import JobService
from t2f.serve.store import Store


def photo(shared_dir: Path, name: str, size: int) -> np.ndarray:
    path = shared_dir / "prnet" / "aflw2000-samples" / f"{name}.jpg"
    return np.asarray(Image.open(path).convert("RGB").resize((size, size)))


def resized(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size)))


def two_people(shared_dir: Path, size: int) -> np.ndarray:
    """Two frontal AFLW2000 faces side by side on a grey square."""
    canvas = np.full((size, size, 3), 128, np.uint8)
    half = size // 2
    canvas[half // 2 : half // 2 + half, :half] = photo(shared_dir, "image00050", half)
    canvas[half // 2 : half // 2 + half, half : 2 * half] = photo(shared_dir, "image03614", half)
    return canvas


def unusable_then_frontal(shared_dir: Path, size: int) -> list[np.ndarray]:
    """No face (coffee), two people, a profile (yaw 64 degrees), then a frontal face (the astronaut)."""
    return [
        resized(coffee(), size),
        two_people(shared_dir, size),
        photo(shared_dir, "image02420", size),
        resized(astronaut(), size),
    ]


class SequencePainter(PhotoTextToImage):
    """Paints the next image of ``images`` for each request (the last one again once they run out)."""

    def __init__(self, images: list[np.ndarray], *, step_seconds: float = 0.0) -> None:
        super().__init__(step_seconds=step_seconds)
        self.images = images
        self.requests: list[FaceRequest] = []

    def generate_batch(
        self,
        requests: Sequence[FaceRequest],
        *,
        on_step: Callable[[StepProgress], None] | None = None,
        **options: object,
    ) -> list[FaceImage]:
        painted = super().generate_batch(requests, on_step=on_step)
        self.requests += requests
        out = []
        for face in painted:
            image = self.images.pop(0) if len(self.images) > 1 else self.images[0]
            out.append(
                FaceImage(
                    request=face.request,
                    image=image.copy(),
                    nsfw=False,
                    withheld_reason=None,
                    dropped_prompt="",
                    timings=face.timings,
                )
            )
        return out


@pytest.mark.simcord(settle_timeout=60)
@pytest.mark.bot_settings(max_repaints=3, steps=3)
async def test_the_job_repaints_until_a_frontal_face(simcord_env, shared_dir: Path, store: Store) -> None:  # type: ignore[no-untyped-def]
    painter = SequencePainter(unusable_then_frontal(shared_dir, 256), step_seconds=0.4)
    simcord_env.bot.service.route.paint.text_to_image = painter
    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face", prompt="a pirate")
    assert result.response.embeds and result.response.embeds[0].title == "a pirate"
    assert [r.seed for r in painter.requests] == [painter.requests[0].seed + i for i in range(4)]
    repaints = [e for e in original_edits(simcord_env) if e.startswith("🔁 Repainting")]
    notes = list(dict.fromkeys(e[e.index("(") + 1 : e.index(")")] for e in repaints))
    assert [f"🔁 Repainting ({note})" for note in notes] == [
        "🔁 Repainting (no face was found in the first image)",
        "🔁 Repainting (there were several people in image 2)",
        "🔁 Repainting (the face was turned away in image 3)",
    ]
    job_id = result.response.embeds[0].footer.text.removeprefix("job ")
    record = await store.get_job(job_id)
    assert record is not None and record.face_report is not None
    first = painter.requests[0].seed
    assert record.face_report.seeds_tried == (first, first + 1, first + 2)
    assert record.face_report.request is not None and record.face_report.request.seed == first + 3
    info = await alice.click(result.response, custom_id=f"t2f:info:{job_id}")
    fields = {f.name: f.value for f in info.response.embeds[0].fields}
    assert fields["Seed"] == str(first + 3) and fields["Seeds repainted"] == f"{first}, {first + 1}, {first + 2}"


@pytest.mark.bot_settings(max_repaints=1)
async def test_when_every_try_fails_the_member_reads_why_and_sees_the_image(simcord_env, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    painter = SequencePainter(unusable_then_frontal(shared_dir, 256))
    simcord_env.bot.service.route.paint.text_to_image = painter
    _, channel, alice = world(simcord_env)
    message = (await alice.slash(channel, "face", prompt="a pirate")).response
    assert message.content.startswith(
        "No usable face after 2 tries: there were several people in the last image. Describe one person. · job `"
    )
    image = np.asarray(Image.open(io.BytesIO(await attachment_bytes(message, "image.png"))))
    assert np.array_equal(image, two_people(shared_dir, 256))  # the last image is shown
    assert len(painter.requests) == 2


@pytest.mark.bot_settings(max_repaints=3)
async def test_a_chosen_seed_is_painted_once_unless_the_member_allows_repaints(simcord_env, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    painter = SequencePainter(unusable_then_frontal(shared_dir, 256))
    simcord_env.bot.service.route.paint.text_to_image = painter
    _, channel, alice = world(simcord_env)
    once = (await alice.slash(channel, "face", prompt="a pirate", seed=42)).response
    assert once.content.startswith("No usable face: no face was found in the image.")
    allowed = (await alice.slash(channel, "face", prompt="a pirate", seed=42, repaint=True)).response
    assert allowed.embeds  # two people (42), a profile (43), then a frontal face (44)
    assert [r.seed for r in painter.requests] == [42, 42, 43, 44]
    assert {f.name: f.value for f in allowed.embeds[0].fields}["Seed"] == "44"


@pytest.mark.bot_settings(prompt_template="a portrait of {prompt}, no nudity", negative_default="profile, two people")
async def test_the_template_reaches_the_painter_and_info_and_moderation_reads_the_member(simcord_env) -> None:  # type: ignore[no-untyped-def]
    painter = simcord_env.bot.service.route.paint.text_to_image
    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face", prompt="a smiling astronaut", negative_prompt="blur")
    assert result.response.embeds  # "nudity" is the template's, not the member's: the filter did not refuse
    assert painter.prompts == ["a portrait of a smiling astronaut, no nudity"]
    job_id = result.response.embeds[0].footer.text.removeprefix("job ")
    info = await alice.click(result.response, custom_id=f"t2f:info:{job_id}")
    fields = {f.name: f.value for f in info.response.embeds[0].fields}
    assert fields["Painted as"] == "a portrait of a smiling astronaut, no nudity"
    assert fields["Painted negative"] == "blur, profile, two people"
    assert fields["Negative prompt"] == "blur"


class RepaintOnce:
    """A painter whose jobs named "a*" need one repaint; it records the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def paint(self, jobs, watch):  # type: ignore[no-untyped-def]
        self.batches.append([f"{j.job_id}:{j.request.face.seed}" for j in jobs])
        return [
            FaceJob(next_seed(j.request), repaint_note="no face was found in the first image")
            if j.job_id.startswith("a") and j.request.repaints_left
            else JobResult(j.job_id, JobStatus.DONE, report=FaceReport(request=j.request.face))
            for j in jobs
        ]

    def write(self, job):  # type: ignore[no-untyped-def]
        raise AssertionError("no files in this test")


async def test_a_repaint_joins_the_next_batch_beside_other_members() -> None:
    backend = RepaintOnce()
    service = JobService(Route(paint=backend, faces=None, files=backend), max_batch=2)
    service.pause()
    jobs = [
        JobRequest(name, user, FaceRequest("x", seed=10), repaints_left=1)
        for name, user in (("a1", 1), ("b1", 2), ("c1", 3), ("d1", 4))
    ]
    handles = [service.submit(job) for job in jobs]
    service.resume()
    results = await asyncio.gather(*(h.result for h in handles))
    assert backend.batches == [["a1:10", "b1:10"], ["a1:11", "c1:10"], ["d1:10"]]  # never a batch of one while c waits
    assert [r.status for r in results] == [JobStatus.DONE] * 4
    assert handles[0].job.seeds_tried == (10,) and handles[0].job.face.seed == 11
    await service.shutdown()
