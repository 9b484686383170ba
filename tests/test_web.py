"""The web layer without a browser: the viewer download, signed links, face pages on disk, the server's
answers (404s that say nothing, path tricks, /healthz, /metrics on its own listener) and the service's health.

The viewer comes from a loopback registry serving the real npm tarball (``npm pack``), through the same
code path as ``t2f web-assets``. Browser tests are in tests/test_web_browser.py.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from t2f.errors import ModelUnavailable
from t2f.faces import FaceRequest, FaceResult
from t2f.files.outputs import IMAGE_FILE, png_bytes
from t2f.report import FaceReport, HeadPose, whole
from t2f.serve.route import Route
from t2f.serve.service import JobService
from t2f.stages.prnet.postprocess import crop_whole_image
from t2f.web.assets import INTEGRITY, SCRIPT_NAME, VERSION, install_model_viewer, integrity_of, tarball_url
from t2f.web.html import NOT_FOUND, face_page
from t2f.web.links import LinkSigner, load_secret
from t2f.web.metrics_listener import MetricsListener
from t2f.web.pages import FacePages, page_files
from t2f.web.server import WebServer, exposure_warning, web_app
from t2f.web.viewer import MAX_ORBIT, MIN_ORBIT, VIEWER_CONTROLS_SCRIPT

JOB = "0123456789ab"
DAY = 86400.0


# -- fixtures shared with tests/test_web_browser.py --------------------------------------------------


@pytest.fixture(scope="session")
def model_viewer_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The published @google/model-viewer tarball, from npm's cache or registry (``npm pack``)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed; it fetches the model-viewer tarball for the web tests")
    folder = tmp_path_factory.mktemp("npm")
    done = subprocess.run(
        [npm, "pack", f"@google/model-viewer@{VERSION}", "--prefer-offline", "--pack-destination", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
    )
    if done.returncode != 0:
        pytest.skip(f"npm pack failed: {done.stderr.strip()[-200:]}")
    return folder / f"google-model-viewer-{VERSION}.tgz"


@pytest.fixture(scope="session")
def loopback_registry(model_viewer_tarball: Path) -> Iterator[str]:
    """A registry on 127.0.0.1 that serves the tarball at npm's path (and 404s everything else)."""
    folder = model_viewer_tarball.parent / "registry"
    served = folder / tarball_url("").lstrip("/")
    served.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_viewer_tarball, served)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def viewer_cache(loopback_registry: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder with the viewer installed the way ``t2f web-assets`` installs it."""
    cache = tmp_path_factory.mktemp("cache")
    install_model_viewer(cache, registry=loopback_registry)
    return cache


def sample_files(shared_dir: Path) -> dict[str, bytes]:
    """A real PRNet face's page files (AFLW2000 image00050), as :func:`page_files` makes them."""
    from mesh_fixtures import reference_mesh

    image, mesh = reference_mesh(shared_dir)
    face = FaceResult(image=image, mesh=mesh, crop=crop_whole_image(image), box=None, faces_found=1)
    return page_files(face, {IMAGE_FILE: png_bytes(image)}, untouched=False)


def sample_report() -> FaceReport:
    return FaceReport(request=FaceRequest("a <b>bold</b> test face", negative_prompt="blur", seed=42, steps=9))


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the viewer download -----------------------------------------------------------------------------


def test_the_viewer_is_installed_once_and_checked(viewer_cache: Path, model_viewer_tarball: Path) -> None:
    script = viewer_cache / "web" / SCRIPT_NAME
    assert integrity_of(model_viewer_tarball.read_bytes()) == INTEGRITY  # the registry's dist.integrity
    text = script.read_text(encoding="utf-8")
    assert "customElements.define" in text and "model-viewer" in text
    assert install_model_viewer(viewer_cache, registry="http://127.0.0.1:9") == script  # present: no download


def test_a_tampered_or_unreachable_download_is_refused(loopback_registry: str, tmp_path: Path) -> None:
    registry = Path(tmp_path / "evil")
    served = registry / tarball_url("").lstrip("/")
    served.parent.mkdir(parents=True)
    served.write_bytes(b"not the package")
    with pytest.raises(ModelUnavailable, match="failed its integrity check"):
        install_model_viewer(tmp_path / "cache", registry=served.resolve().parents[3].as_uri())
    with pytest.raises(ModelUnavailable, match=r"Could not download @google/model-viewer 4\.4\.0"):
        install_model_viewer(tmp_path / "cache", registry="http://127.0.0.1:9", timeout=2)
    assert not (tmp_path / "cache" / "web").exists() or list((tmp_path / "cache" / "web").iterdir()) == []


# -- links and the files on disk ---------------------------------------------------------------------


def test_links_are_signed_and_expire(tmp_path: Path) -> None:
    secret = load_secret("", tmp_path / "web" / "secret")
    assert load_secret("", tmp_path / "web" / "secret") == secret  # generated once, then kept
    assert (tmp_path / "web" / "secret").stat().st_mode & 0o777 == 0o600
    assert load_secret("from-env", tmp_path / "web" / "secret") == b"from-env"
    signer = LinkSigner(secret)
    _, _, job, expires, signature, _ = signer.path(JOB, 2_000).split("/")
    assert signer.valid(job, expires, signature, now=1_999)
    assert not signer.valid(job, expires, signature, now=2_000)  # expired
    assert not signer.valid(job, "3000", signature, now=1_999)  # expiry extended
    assert not signer.valid("0123456789ac", expires, signature, now=1_999)  # another face
    assert not LinkSigner(b"other").valid(job, expires, signature, now=1_999)


def test_pages_save_remove_and_prune(tmp_path: Path) -> None:
    clock = Clock()
    pages = FacePages(
        tmp_path / "out", LinkSigner(b"k"), keep_s=7 * DAY, public_url="https://faces.example", clock=clock
    )
    pages.save(JOB, {IMAGE_FILE: b"png", "face.glb": b"glb", "notes.txt": b"x"}, sample_report())
    assert sorted(p.name for p in (tmp_path / "out" / JOB).iterdir()) == ["face.glb", "image.png", "metadata.json"]
    assert pages.report(JOB)["seed"] == 42 and pages.expires(JOB) == int(clock.now + 7 * DAY)
    assert pages.report(JOB)["files"] == ["face.glb", "image.png"]  # what the page may show
    assert pages.public_link(JOB) == "https://faces.example" + LinkSigner(b"k").path(JOB, int(clock.now + 7 * DAY))
    assert pages.file(JOB, "face.glb") is not None and pages.file(JOB, "../metadata.json") is None
    with pytest.raises(ValueError, match="not a job id"):
        pages.folder("../../etc")
    other = "ba9876543210"
    clock.now += 6 * DAY
    pages.save(other, {IMAGE_FILE: b"png"}, None)
    (tmp_path / "out" / "20250101-120000-42").mkdir()  # a `t2f generate` folder: never pruned
    clock.now += 1 * DAY
    assert pages.prune() == [JOB]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["20250101-120000-42", other]
    assert asyncio.run(pages.remove(other)) is True and pages.path(other) is None
    assert pages.remove_face(other) is False


def test_the_face_page_marks_up_a_viewer_that_stays_in_front_with_a_fallback() -> None:
    data = {
        **sample_report().to_json(),
        "face": {"pose_deg": {"yaw": -0.4, "pitch": 2.5, "roll": -2.5}},
        "files": ["face.glb", "image.png", "preview.jpg", "turntable.gif"],
    }
    body = face_page(data, expires=1_900_000_000)
    assert MIN_ORBIT == "-70deg 55deg auto" and MAX_ORBIT == "70deg 125deg auto"  # as far as the turntable swings
    assert f'camera-orbit="0deg 90deg auto" min-camera-orbit="{MIN_ORBIT}" max-camera-orbit="{MAX_ORBIT}"' in body
    assert '<button type="button" class="reset-view" id="reset-view">Reset view</button></model-viewer>' in body
    assert '<img class="fallback" id="fallback" data-src="turntable.gif" alt="The head turning" hidden>' in body
    assert '<noscript><img class="fallback" src="turntable.gif" alt="The head turning"></noscript>' in body
    assert '<figure class="strip"><img src="preview.jpg"' in body
    assert "<dd>yaw 0° · pitch 3° · roll -3°</dd>" in body  # whole degrees, halves away from zero, no "-0"
    assert '<link rel="icon" href="data:image/svg+xml,%3Csvg' in body  # no /favicon.ico request, no 404
    assert '<script type="module" src="/assets/viewer.js"></script>' in body
    # A page saved before the file list was kept had the preview but no turntable.
    old = face_page({key: value for key, value in data.items() if key != "files"}, expires=1_900_000_000)
    assert 'data-src="preview.jpg" alt="The head from the front and the side"' in old


def test_head_pose_text_rounds_whole_degrees_with_the_right_sign() -> None:
    assert HeadPose(-0.4, 0.5, -0.5).text() == "yaw 0° · pitch 1° · roll -1°"
    assert HeadPose(12.49, -179.6, 0.0).text() == "yaw 12° · pitch -180° · roll 0°"
    assert [whole(value) for value in (2.5, -2.5, -0.49, 1e-9, -1e-9)] == [3, -3, 0, 0, 0]


# -- the server ---------------------------------------------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path, viewer_cache: Path):  # type: ignore[no-untyped-def]
    clock = Clock()
    pages = FacePages(tmp_path / "out", LinkSigner(b"secret"), keep_s=7 * DAY, clock=clock)
    pages.save(JOB, {IMAGE_FILE: b"png-bytes", "face.glb": b"glb-bytes"}, sample_report())
    healthy = [False, "warming up"]
    metrics = MetricsListener(
        lambda: (b"t2f_up 1\n", "text/plain; version=0.0.4; charset=utf-8"), host="127.0.0.1", port=0
    )
    app = web_app(
        pages=pages,
        viewer_script=viewer_cache / "web" / SCRIPT_NAME,
        health=lambda: tuple(healthy),  # type: ignore[arg-type,return-value]
        metrics=metrics,
    )
    server = WebServer(app, host="127.0.0.1", port=0)
    await server.start()
    async with aiohttp.ClientSession(server.url) as session:
        yield session, pages, clock, healthy, metrics
    await server.stop()


async def get(session: aiohttp.ClientSession, path: str) -> tuple[int, str]:
    async with session.get(path) as response:
        return response.status, await response.text(errors="replace")


async def test_a_valid_link_serves_the_page_and_its_files(served) -> None:  # type: ignore[no-untyped-def]
    session, pages, _, _, _ = served
    status, body = await get(session, pages.path(JOB))
    assert status == 200
    assert "a &lt;b&gt;bold&lt;/b&gt; test face" in body and "<b>bold" not in body  # the prompt is escaped
    assert '<model-viewer id="viewer" src="face.glb"' in body and "<dd>42</dd>" in body
    assert 'src="/assets/model-viewer.min.js"' in body and "https://" not in body  # nothing from a CDN
    async with session.get(pages.path(JOB) + "face.glb") as response:
        assert await response.read() == b"glb-bytes"
        assert response.headers["Content-Type"] == "model/gltf-binary"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    status, script = await get(session, "/assets/model-viewer.min.js")
    assert status == 200 and "customElements.define" in script
    status, controls = await get(session, "/assets/viewer.js")
    assert status == 200 and controls == VIEWER_CONTROLS_SCRIPT and "function resetView" in controls


async def test_forged_expired_and_deleted_links_get_the_same_404(served) -> None:  # type: ignore[no-untyped-def]
    session, pages, clock, _, _ = served
    good = pages.path(JOB)
    _, _, job, expires, signature, _ = good.split("/")
    forged = [
        f"/f/{job}/{int(expires) + 86400}/{signature}/",  # a longer life
        f"/f/ba9876543210/{expires}/{signature}/",  # another face (that does not exist)
        f"/f/{job}/{expires}/{'A' * 32}/",  # a made-up signature
        f"/f/{job}/{expires}/{signature}/secret",  # a file that is not served
    ]
    answers = [await get(session, path) for path in forged]
    assert answers == [(404, NOT_FOUND)] * len(forged)
    clock.now += 7 * 86400
    assert await get(session, good) == (404, NOT_FOUND)  # expired, though the files are still there
    clock.now -= 7 * 86400
    await pages.remove(JOB)
    assert await get(session, good) == (404, NOT_FOUND)
    assert await get(session, good + "face.glb") == (404, NOT_FOUND)


@pytest.mark.parametrize(
    "path",
    [
        "/f/../../etc/passwd",
        "/assets/..%2f..%2fweb%2fsecret",
        "/assets/%2e%2e/%2e%2e/etc/passwd",
        "/f/0123456789ab/1/x/..%2f..%2f..%2fmetadata.json",
        "/f/{good}..%2fmetadata.json",
        "/f/{good}%2e%2e/%2e%2e/%2e%2e/web/secret",
        "/f/{good}..",
    ],
)
async def test_path_traversal_is_refused(served, path: str) -> None:  # type: ignore[no-untyped-def]
    session, pages, _, _, _ = served
    url = path.format(good=pages.path(JOB).lstrip("/").removeprefix("f/"))
    async with session.get(url) as response:
        body = await response.read()
    assert response.status in (400, 404)
    assert b"glb-bytes" not in body and b"saved_at" not in body and b"root:" not in body


async def test_healthz_and_metrics_on_their_own_listener(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    session, _, _, healthy, metrics = served
    assert await get(session, "/healthz") == (503, "warming up\n")
    healthy[:] = [True, "ok"]
    assert await get(session, "/healthz") == (200, "ok\n")
    assert await get(session, "/metrics") == (404, NOT_FOUND)  # the public pages never serve them
    assert metrics.server.port not in (0, int(str(session._base_url).rsplit(":", 1)[1]))
    async with aiohttp.ClientSession() as scraper, scraper.get(metrics.url) as response:
        assert (response.status, await response.text()) == (200, "t2f_up 1\n")
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    bare = WebServer(web_app(pages=None, viewer_script=None, health=lambda: (True, "ok")), host="127.0.0.1", port=0)
    await bare.start()
    async with aiohttp.ClientSession(bare.url) as session2:
        assert await get(session2, "/metrics") == (404, NOT_FOUND)
        assert await get(session2, "/assets/model-viewer.min.js") == (404, NOT_FOUND)
    await bare.stop()


def test_only_a_public_address_gets_the_warning() -> None:
    assert exposure_warning("127.0.0.1", 8080) is None and exposure_warning("::1", 1) is None
    assert exposure_warning("localhost", 1) is None
    assert exposure_warning("0.0.0.0", 8080) == (
        "warning: the web server listens on 0.0.0.0:8080, so other machines can reach it (loopback is 127.0.0.1)."
    )


# -- the service's health -----------------------------------------------------------------------------


class IdleBackend:
    def paint(self, jobs, watch):  # type: ignore[no-untyped-def]
        return []

    def write(self, job):  # type: ignore[no-untyped-def]
        raise AssertionError


async def test_service_health_says_why() -> None:
    service = JobService(Route(paint=IdleBackend(), faces=None, files=IdleBackend()))
    assert service.health() == (False, "warming up")
    assert service.health(require_warm=False) == (True, "ok")
    await service.warm_up(lambda: None)
    assert service.health() == (True, "ok")
    await service.shutdown(timeout_s=1)
    assert service.health() == (False, "shutting down")


def test_textured_zip_keeps_relative_paths(shared_dir: Path) -> None:
    files = sample_files(shared_dir)
    with zipfile.ZipFile(BytesIO(files["face_textured.zip"])) as archive:
        assert sorted(archive.namelist()) == [
            "face_textured.mtl",
            "face_textured.obj",
            "face_textured.png",
            "face_textured_photo.obj",
        ]
        assert b"map_Kd face_textured.png" in archive.read("face_textured.mtl")
    assert np.frombuffer(files["face.glb"][:4], np.uint8).tobytes() == b"glTF"
