"""Photo jobs below the bot: the download allow-list (no SSRF), format sniffing, and batching with text jobs."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from discord_fixtures import PhotoTextToImage
from route_helpers import RecordingWatch, local_stages
from skimage.data import astronaut

from t2f.faces import FaceRequest
from t2f.files.download import DownloadLimits, DownloadRefused, check_photo_format, check_url, download, save_upload
from t2f.serve.jobs import FaceJob, JobRequest
from t2f.serve.queue import JobHandle, JobQueue
from t2f.stages.pipeline import FacePipeline

ATTACHMENT = "https://cdn.discordapp.com/attachments/1/2/me.png?ex=1&is=2&hm=3"


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.discordapp.com/attachments/1/2/me.png",  # not https
        "https://evil.example/me.png",
        "https://cdn.discordapp.com.evil.example/me.png",  # a look-alike suffix
        "https://evilcdn.discordapp.com/me.png",
        "https://user:pass@cdn.discordapp.com/me.png",
        "https://cdn.discordapp.com:8443/me.png",
        "https://127.0.0.1/me.png",
        "https://169.254.169.254/latest/meta-data",  # a cloud metadata service
        "https://[::1]/me.png",
        "file:///etc/passwd",
        "ftp://cdn.discordapp.com/me.png",
        "https://cdn.discordapp.com:99999/me.png",  # does not parse
        "",
    ],
)
def test_the_allow_list_refuses_every_other_address(url: str) -> None:
    with pytest.raises(DownloadRefused, match=r"^Only images posted on Discord can be used\.$"):
        check_url(url)


def test_discords_cdn_hosts_pass() -> None:
    assert check_url(ATTACHMENT) == ATTACHMENT
    assert check_url("https://media.discordapp.net/attachments/1/2/me.webp")
    assert check_url("https://CDN.discordapp.com./avatars/1/abc.png?size=1024")  # case and a root dot
    assert check_url("https://cdn.simcord.invalid/a.png", ("cdn.simcord.invalid",))  # injectable for tests


async def test_download_never_reads_a_refused_url_nor_an_oversized_file() -> None:
    reads: list[str] = []

    async def read() -> bytes:
        reads.append("read")
        return b"\x89PNG\r\n\x1a\n" + bytes(100)

    with pytest.raises(DownloadRefused):
        await download("https://evil.example/a.png", read)
    with pytest.raises(DownloadRefused, match=r"^The image is too large \(30.0 MB\); send one under 25.0 MB.$"):
        await download(ATTACHMENT, read, size=30 * 1024 * 1024)
    assert reads == []
    assert len(await download(ATTACHMENT, read, size=108)) == 108
    with pytest.raises(DownloadRefused, match=r"too large \(0.0 MB\)"):  # the declared size was wrong
        await download(ATTACHMENT, read, size=10, limits=DownloadLimits(max_bytes=50))


async def test_a_slow_download_is_stopped() -> None:
    async def slow() -> bytes:
        await asyncio.sleep(10)
        return b""

    with pytest.raises(DownloadRefused, match="took too long"):
        await download(ATTACHMENT, slow, limits=DownloadLimits(timeout_s=0.01))


def test_formats_by_magic_bytes_and_kept_uploads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert check_photo_format(b"\x89PNG\r\n\x1a\nrest") == "png"
    assert check_photo_format(b"\xff\xd8\xff\xe0rest") == "jpeg"
    assert check_photo_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    for other in (b"GIF89a", b"%PDF-1.7", b"", b"RIFF\x00\x00\x00\x00AVI "):
        with pytest.raises(DownloadRefused):
            check_photo_format(other)
    kept = save_upload(tmp_path / "uploads", "abc123", b"\xff\xd8\xffdata")
    assert kept.name == "abc123.jpeg" and kept.read_bytes() == b"\xff\xd8\xffdata"
    assert [p.name for p in kept.parent.iterdir()] == ["abc123.jpeg"]


def job(job_id: str, *, photo: np.ndarray | None = None, steps: int = 3) -> JobRequest:
    return JobRequest(job_id, user_id=len(job_id), face=FaceRequest("a face", steps=steps, size=256), photo=photo)


def test_photo_jobs_join_any_batch() -> None:
    loop = asyncio.new_event_loop()
    try:
        queue = JobQueue()
        pixels = np.zeros((64, 64, 3), np.uint8)
        for item in (job("photo1", photo=pixels), job("t", steps=5), job("tt", steps=9), job("photo22", photo=pixels)):
            queue.add(JobHandle(item, loop))
        batch = [h.job.job_id for h in queue.take_batch(4)]
        assert batch == ["photo1", "t", "photo22"]  # the first painted job's shape; photos fit any
        assert [h.job.job_id for h in queue.take_batch(4)] == ["tt"]
    finally:
        loop.close()


def test_a_mixed_batch_paints_only_the_text_jobs_and_rebuilds_each_face_alone(stages: FacePipeline) -> None:
    painter = PhotoTextToImage()
    pipeline = FacePipeline(prnet=stages.prnet, uv=stages.uv, detector=stages.detector, text_to_image=painter)
    local = local_stages(pipeline)
    predicted: list[int] = []
    predict = stages.prnet.predict

    def counting(batch: np.ndarray) -> np.ndarray:
        predicted.append(len(batch))
        return predict(batch)

    pipeline.prnet.predict = counting  # type: ignore[method-assign]  # the session's PRNet: restored below
    photo = astronaut()
    try:
        painted = local.painter.paint([FaceJob(job("text1")), FaceJob(job("photo1", photo=photo))], RecordingWatch())
        assert painter.prompts == ["a face"]  # the photo job came back from the painter as it was
        assert isinstance(painted[1], FaceJob) and painted[1].painting is None and painted[1].image is photo
        found = [local.faces.find(outcome, RecordingWatch()) for outcome in painted]  # type: ignore[arg-type]
    finally:
        del pipeline.prnet.predict
    assert painter.checked == [(512, 512, 3)]  # the safety checker saw the photo (the painter judged its own)
    assert predicted == [1, 1]  # each face rebuilt as soon as it is found, not with its batch
    text, photo_face = found
    assert isinstance(text, FaceJob) and isinstance(photo_face, FaceJob)
    assert photo_face.face is not None and photo_face.face.image is photo
    assert photo_face.report is not None and photo_face.report.request is None
    assert photo_face.face.faces_found == 1
    assert "image.png" not in local.files.write(photo_face).files  # the member's photo is not sent back
    assert "image.png" in local.files.write(text).files
