"""The face page and the ``t2f serve`` page in real headless Chromium (Debian's, driven by playwright).

``<model-viewer>`` must fire ``load`` for the GLB with no console error and no request leaving this
machine, and a screenshot's centre must show the face, not the background. The serve page must take a
prompt, show progress, then the result. Screenshots go to the test's tmp folder (and, when it exists, to
/tmp/t2f-screens/ for a person to look at).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_web import DAY, JOB, loopback_registry, model_viewer_tarball, sample_files, sample_report, viewer_cache  # noqa: F401  (fixtures)

from t2f.web.links import LinkSigner
from t2f.web.pages import FacePages
from t2f.web.server import WebServer, web_app
from t2f.web.viewer import NO_WEBGL

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed (pip install)")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# WebGL without a GPU: Chromium's software rasteriser (SwiftShader) through ANGLE. On a busy 2-core machine
# a software frame can outlast the GPU watchdog, which then drops the WebGL context (the viewer restores
# it, but meanwhile nothing is drawn), so the watchdog is off.
CHROMIUM_ARGS = [
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-gpu-watchdog",
]
SCREENS = Path("/tmp/t2f-screens")
BACKGROUND_RGB = (0x2B, 0x2D, 0x31)  # --panel in t2f.web.html.STYLE, the viewer's background


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    async with playwright_api.async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        await launched.close()


async def open_page(browser: Any, base: str) -> tuple[Any, list[str], list[str]]:
    """A page whose console errors and off-machine requests are recorded (the latter also refused)."""
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    async def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith((base, "data:", "blob:")):
            await request_route.continue_()
        else:
            outside.append(url)
            await request_route.abort()

    await page.route("**/*", route)
    return page, errors, outside


def keep(shot: Path) -> None:
    if SCREENS.is_dir():
        shutil.copyfile(shot, SCREENS / shot.name)


async def viewer_screenshot(page: Any, viewer: Any, shot: Path) -> None:
    """The viewer's area of the page, in the state it is in now.

    Not ``viewer.screenshot()``: that waits for two animation frames with the element in the same place,
    and a busy machine's software WebGL can hold frames back past any timeout (seen at load average 8).
    """
    await viewer.evaluate("(element) => element.scrollIntoView({block: 'center'})")
    await page.screenshot(path=str(shot), clip=await viewer.bounding_box(), timeout=120_000)
    keep(shot)


def centre_differs_from_background(shot: Path) -> float:
    """Share of the viewer's centre (the middle 30 %) whose colour is not the background's."""
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    h, w = pixels.shape[:2]
    centre = pixels[int(h * 0.35) : int(h * 0.65), int(w * 0.35) : int(w * 0.65)]
    return float((np.abs(centre - np.array(BACKGROUND_RGB)).sum(axis=2) > 30).mean())


VIEWER_LOADED = """(viewer) => new Promise((resolve, reject) => {
  if (viewer.loaded) { resolve(true); return; }
  viewer.addEventListener('load', () => resolve(true), {once: true});
  viewer.addEventListener('error', (event) => reject(new Error('model-viewer: ' + event.detail?.type)),
                          {once: true});
})"""


async def test_the_face_page_shows_the_face_in_3d(
    browser: Any,
    viewer_cache: Path,  # noqa: F811
    shared_dir: Path,
    tmp_path: Path,
) -> None:
    pages = FacePages(tmp_path / "out", LinkSigner(b"secret"), keep_s=7 * DAY)
    await asyncio.to_thread(pages.save, JOB, sample_files(shared_dir), sample_report())
    app = web_app(
        pages=pages, viewer_script=viewer_cache / "web" / "model-viewer-4.4.0.min.js", health=lambda: (True, "ok")
    )
    server = WebServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        page, errors, outside = await open_page(browser, server.url)
        response = await page.goto(server.url + pages.path(JOB))
        assert response.status == 200
        viewer = await page.wait_for_selector("model-viewer#viewer")
        await viewer.evaluate(VIEWER_LOADED)
        await page.wait_for_timeout(500)  # a few frames after load
        shot = tmp_path / "face-page.png"
        await page.screenshot(path=str(shot), full_page=True)
        keep(shot)
        viewer_shot = tmp_path / "face-page-viewer.png"
        await viewer_screenshot(page, viewer, viewer_shot)
        assert centre_differs_from_background(viewer_shot) > 0.5
        assert await page.text_content("h1") == "a <b>bold</b> test face"
        links = await page.eval_on_selector_all(".downloads a", "links => links.map(a => a.getAttribute('href'))")
        assert links == ["face.obj", "face_textured.zip", "face.glb"]
        assert errors == [] and outside == []
        gone = await page.goto(server.url + pages.path(JOB).replace(JOB, "ba9876543210"))
        assert gone.status == 404
    finally:
        await server.stop()


async def test_the_serve_page_makes_a_face_with_progress(
    browser: Any,
    viewer_cache: Path,  # noqa: F811
    stages: Any,
    shared_dir: Path,
    tmp_path: Path,
) -> None:
    from discord_fixtures import PhotoTextToImage, bot_settings
    from mesh_fixtures import reference_face_pipeline
    from route_helpers import studio_on

    settings = bot_settings(tmp_path, cache_dir=viewer_cache, output_dir=tmp_path / "out", web_secret="s3cret")
    painter = PhotoTextToImage(step_seconds=0.25)  # slow enough for the page to show each step
    pipeline = reference_face_pipeline(stages, shared_dir, painter)
    async with studio_on(settings, pipeline) as server:
        page, errors, outside = await open_page(browser, server.url)
        await page.goto(server.url + "/")
        await page.fill("#prompt", "a portrait photo of an astronaut")
        await page.fill("#steps", "6")
        await page.click("#go")
        await page.wait_for_selector("#result:not([hidden])", timeout=120_000)
        viewer = await page.wait_for_selector("model-viewer#viewer")
        await viewer.evaluate(VIEWER_LOADED)
        await page.wait_for_timeout(500)
        seen = await page.evaluate("window.t2fSeen")
        viewer_shot = tmp_path / "serve-page-viewer.png"
        await viewer_screenshot(page, viewer, viewer_shot)
        shot = tmp_path / "serve-page.png"
        await page.screenshot(path=str(shot), full_page=True, timeout=120_000)
        keep(shot)
        painting = [line for line in seen if line.startswith("Painting · step ")]
        assert painting and seen.index(painting[0]) < seen.index("Done.") == len(seen) - 1
        assert painter.prompts == ["a portrait photo of an astronaut"]
        assert centre_differs_from_background(viewer_shot) > 0.5
        page_link = await page.get_attribute("#page", "href")
        job_id = page_link.split("/")[2]
        assert sorted(p.name for p in (tmp_path / "out" / job_id).iterdir()) == [
            "face.glb",
            "face.obj",
            "face_textured.zip",
            "image.png",
            "metadata.json",
            "preview.jpg",
            "turntable.gif",
        ]
        assert errors == [] and outside == []
        # The same moderation as the bot: a refused prompt is answered in one line, nothing is painted.
        await page.fill("#prompt", "a portrait photo of a naked woman")
        await page.click("#go")
        await page.wait_for_selector("#error:not([hidden])")
        assert "prompt" in (await page.text_content("#error")).lower()
        assert len(painter.prompts) == 1


async def test_the_serve_page_shows_the_last_image_and_why_when_every_try_failed(
    browser: Any,
    viewer_cache: Path,  # noqa: F811
    stages: Any,
    tmp_path: Path,
) -> None:
    from discord_fixtures import PhotoTextToImage, bot_settings
    from route_helpers import studio_on

    from t2f.stages.gate import GateLimits
    from t2f.stages.pipeline import FacePipeline

    settings = bot_settings(tmp_path, cache_dir=viewer_cache, output_dir=tmp_path / "out", web_secret="s3cret")
    faceless = PhotoTextToImage()
    faceless.photo = np.full((512, 512, 3), 128, np.uint8)  # a flat grey picture: the face gate finds no face
    pipeline = FacePipeline(prnet=stages.prnet, uv=stages.uv, detector=stages.detector, text_to_image=faceless)
    async with studio_on(settings, pipeline, gate=GateLimits()) as server:
        page, errors, outside = await open_page(browser, server.url)
        await page.goto(server.url + "/")
        await page.fill("#prompt", "a portrait photo of an astronaut")
        await page.fill("#seed", "7")  # a chosen seed: one try, no repaints
        await page.fill("#steps", "5")
        await page.click("#go")
        await page.wait_for_selector("#last:not([hidden])", timeout=120_000)
        reason = await page.text_content("#error")
        assert reason.startswith("No usable face: no face was found in the image.") and "(job " in reason
        assert await page.is_hidden("#result")
        picture = await page.wait_for_selector("#last-image")
        await page.wait_for_function("() => document.querySelector('#last-image').complete")
        size = settings.image_size  # smaller than the page's 384 px thumbnail, so kept as painted
        assert await picture.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [size, size]
        assert (await picture.get_attribute("src")).startswith("data:image/jpeg;base64,")
        shot = tmp_path / "serve-page-failed.png"
        await page.screenshot(path=str(shot), full_page=True, timeout=120_000)
        keep(shot)
        grey = np.asarray(Image.open(shot).convert("RGB"))
        assert (np.abs(grey.astype(int) - 128).sum(axis=2) < 6).sum() > 0.9 * size * size  # the grey picture
        assert errors == [] and outside == []
        # A new request clears the last failure.
        await page.fill("#prompt", "a portrait photo of a naked woman")
        await page.click("#go")
        await page.wait_for_selector("#last", state="hidden")


async def test_without_webgl_the_face_page_shows_the_turntable(
    viewer_cache: Path,  # noqa: F811
    shared_dir: Path,
    tmp_path: Path,
) -> None:
    from mesh_fixtures import reference_mesh

    from t2f.export.turntable import turntable_gif

    if not Path(CHROMIUM).is_file():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    pages = FacePages(tmp_path / "out", LinkSigner(b"secret"), keep_s=7 * DAY)
    files = {**sample_files(shared_dir), "turntable.gif": turntable_gif(reference_mesh(shared_dir)[1])}
    await asyncio.to_thread(pages.save, JOB, files, sample_report())
    app = web_app(
        pages=pages, viewer_script=viewer_cache / "web" / "model-viewer-4.4.0.min.js", health=lambda: (True, "ok")
    )
    server = WebServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with playwright_api.async_playwright() as driver:
            # A browser without WebGL (as some locked-down or very old machines are).
            no_webgl = await driver.chromium.launch(
                executable_path=CHROMIUM, args=["--disable-webgl", "--disable-3d-apis"], headless=True
            )
            page, errors, outside = await open_page(no_webgl, server.url)
            await page.goto(server.url + pages.path(JOB))
            await page.wait_for_selector("#fallback:not([hidden])")
            await page.wait_for_function("() => document.querySelector('#fallback').complete")
            size = await page.eval_on_selector("#fallback", "(img) => [img.naturalWidth, img.naturalHeight]")
            assert size == [256, 256]  # the turntable GIF, loaded
            assert await page.get_attribute("#fallback", "src") == "turntable.gif"
            assert await page.is_hidden("model-viewer#viewer")
            assert await page.text_content(".no-webgl") == NO_WEBGL
            shot = tmp_path / "face-page-no-webgl.png"
            await page.screenshot(path=str(shot), full_page=True)
            keep(shot)
            # three.js says it could not make a WebGL context (its own console lines); nothing else went wrong.
            assert errors and all("WebGL" in error for error in errors), errors
            assert outside == []
            await no_webgl.close()
    finally:
        await server.stop()
