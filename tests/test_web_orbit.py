"""Turning the head as people do: mouse, touch and keys on the face page and in ``t2f serve``, at desktop and
phone widths, in a headed Chromium on a virtual display (Xvfb).

Headless Chromium cannot judge this: there a mouse drag on the viewer turned the head 0° (six fresh loads,
until the window was resized once), while the same drag in a headed Chromium turned it 106°. So these
tests start Xvfb themselves (on a display it picks, ``-displayfd``), run Chromium headed on it, drag with
real input events (CDP mouse and touch events, which reach the page as trusted pointer events), and read
where the camera went from ``<model-viewer>``'s ``getCameraOrbit()``. They skip, saying why, without Xvfb.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_web import DAY, JOB, loopback_registry, model_viewer_tarball, sample_files, sample_report, viewer_cache  # noqa: F401  (fixtures)
from test_web_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWER_LOADED,
    centre_differs_from_background,
    keep,
    viewer_screenshot,
)

from t2f.web.links import LinkSigner
from t2f.web.pages import FacePages
from t2f.web.server import WebServer, web_app
from t2f.web.viewer import MAX_ORBIT, MIN_ORBIT

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed (pip install)")
XVFB = shutil.which("Xvfb")
DESKTOP = {"width": 1100, "height": 900}
PHONE = {"width": 390, "height": 844}
YAW_LIMIT = float(MAX_ORBIT.split()[0].removesuffix("deg"))  # 70: as far as the turntable swings
PITCH_LIMITS = (float(MIN_ORBIT.split()[1].removesuffix("deg")), float(MAX_ORBIT.split()[1].removesuffix("deg")))
TURN_WAIT_MS = 60_000  # software WebGL on a busy 2-core machine; the waits end as soon as the camera got there
ORBIT = "(viewer) => { const o = viewer.getCameraOrbit(); return [o.theta * 180 / Math.PI, o.phi * 180 / Math.PI]; }"


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A fresh X display from Xvfb (it picks a free number and says which), stopped after the module."""
    if XVFB is None:
        pytest.skip(
            "Xvfb is not installed (apt-get install xvfb; .ci/run does): the orbit tests need a headed Chromium, "
            "because a headless one does not turn the head on a drag"
        )
    if not Path(CHROMIUM).is_file():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        [XVFB, "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        number = os.read(read_end, 32).decode().strip() if ready else ""
        if not number.isdigit():
            pytest.fail(f"Xvfb did not report a display (exit status {server.poll()})")
        yield f":{number}"
    finally:
        os.close(read_end)
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
async def headed(display: str) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=False, env={**os.environ, "DISPLAY": display}
        )
        yield browser
        await browser.close()


async def open_viewer_page(browser: Any, url: str, *, viewport: dict[str, int], phone: bool) -> tuple[Any, list[str]]:
    """A page at ``url`` in a context of its own; the list collects console errors and failed responses."""
    context = await browser.new_context(viewport=viewport, has_touch=True, is_mobile=phone)
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "response",
        lambda response: problems.append(f"{response.status} {response.url}") if response.status >= 400 else None,
    )
    await page.goto(url)
    return page, problems


async def orbit(viewer: Any) -> tuple[float, float]:
    """(yaw, polar angle) of the camera in degrees: (0, 90) looks straight at the face."""
    theta, phi = await viewer.evaluate(ORBIT)
    return float(theta), float(phi)


async def wait_for_orbit(page: Any, condition: str, timeout_ms: int = TURN_WAIT_MS) -> None:
    """Wait until ``condition`` (JavaScript over ``theta`` and ``phi`` in degrees) holds for the viewer's camera."""
    await page.wait_for_function(
        "() => { const o = document.querySelector('#viewer').getCameraOrbit();"
        f" const theta = o.theta * 180 / Math.PI, phi = o.phi * 180 / Math.PI; return {condition}; }}",
        timeout=timeout_ms,
    )


async def drag_until(page: Any, drag: Any, condition: str) -> None:
    """Drag (``drag()``, an awaitable) until the camera meets ``condition``; at most three drags.

    On a loaded 2-core machine the very first gesture after the model appears was once lost (the camera
    did not move; the same drag again turned it); a viewer that never turns still fails here.
    """
    for attempt in range(3):
        await drag()
        try:
            await wait_for_orbit(page, condition, timeout_ms=TURN_WAIT_MS // 3)
            return
        except playwright_api.TimeoutError:
            if attempt == 2:
                raise


async def ready(page: Any, viewer: Any) -> None:
    """The model is loaded and drawn (model-viewer's ``modelIsVisible``), so gestures reach the camera."""
    await viewer.evaluate(VIEWER_LOADED)
    await page.wait_for_function("() => document.querySelector('#viewer').modelIsVisible", timeout=TURN_WAIT_MS)


async def centre(viewer: Any) -> tuple[float, float]:
    """The viewer's centre in the window, once it is scrolled to the window's middle (no waiting for frames)."""
    await viewer.evaluate("(element) => element.scrollIntoView({block: 'center'})")
    box = await viewer.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


async def mouse_drag(page: Any, viewer: Any, dx: float, dy: float) -> None:
    x, y = await centre(viewer)
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(x + dx, y + dy, steps=12)
    await page.mouse.up()


async def finger_drag(page: Any, viewer: Any, dx: float, dy: float) -> None:
    """One finger from the viewer's centre by (dx, dy) CSS pixels: Chromium's own touch events (CDP)."""
    x, y = await centre(viewer)
    touch = await page.context.new_cdp_session(page)
    await touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 13):
        point = {"x": x + dx * step / 12, "y": y + dy * step / 12}
        await touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    await touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await touch.detach()


async def reset_view(page: Any) -> None:
    await page.click("#reset-view")
    await wait_for_orbit(page, "Math.abs(theta) < 0.5 && Math.abs(phi - 90) < 0.5")


async def check_mouse_and_keys(page: Any, viewer: Any) -> None:
    """A short drag turns the head; a long one stops at the limits; Reset view and the arrow keys work."""
    assert await orbit(viewer) == pytest.approx((0.0, 90.0), abs=0.01)  # opens facing the viewer
    # A drag to the right turns the head to its left: theta goes down.
    await drag_until(page, lambda: mouse_drag(page, viewer, 30, 0), "theta < -5")
    theta, phi = await orbit(viewer)
    assert -YAW_LIMIT - 0.01 <= theta < -5 and phi == pytest.approx(90.0, abs=1.0)
    await mouse_drag(page, viewer, 700, 500)  # far beyond the limits: the camera stays in front of the mask
    await wait_for_orbit(page, f"theta < {-YAW_LIMIT + 0.5} && phi < {PITCH_LIMITS[0] + 0.5}")
    theta, phi = await orbit(viewer)
    assert theta >= -YAW_LIMIT - 0.01 and phi >= PITCH_LIMITS[0] - 0.01
    await reset_view(page)
    await page.evaluate("document.activeElement.blur()")
    for _ in range(15):  # as a keyboard user gets there: Tab until the viewer has the focus
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement === document.querySelector('#viewer')"):
            break
    else:
        pytest.fail("Tab never reached the 3D viewer")
    for _ in range(2):
        await page.keyboard.press("ArrowRight")
    await wait_for_orbit(page, "Math.abs(theta) > 5")
    await reset_view(page)


async def check_touch(page: Any, viewer: Any) -> None:
    """A sideways swipe turns the head and stops at the limit; an upward one scrolls the page instead."""
    await drag_until(page, lambda: finger_drag(page, viewer, 60, 0), "theta < -5")
    await finger_drag(page, viewer, 900, 0)
    await wait_for_orbit(page, f"theta < {-YAW_LIMIT + 0.5}")
    assert (await orbit(viewer))[0] >= -YAW_LIMIT - 0.01
    await reset_view(page)
    scrolled = await page.evaluate("window.scrollY")
    room_below = await page.evaluate("document.documentElement.scrollHeight - window.innerHeight - window.scrollY")
    upwards = room_below > 100  # swipe the way the page has room to scroll
    assert upwards or scrolled > 100
    await finger_drag(page, viewer, 0, -150 if upwards else 150)
    moved = "window.scrollY > before" if upwards else "window.scrollY < before"
    await page.wait_for_function(f"(before) => {moved}", arg=scrolled, timeout=TURN_WAIT_MS)
    assert await orbit(viewer) == pytest.approx((0.0, 90.0), abs=0.5)  # the page moved, not the head


@pytest.mark.parametrize("width", ["desktop", "phone"])
async def test_the_face_page_turns_with_mouse_keys_and_touch(
    headed: Any,
    viewer_cache: Path,  # noqa: F811
    shared_dir: Path,
    tmp_path: Path,
    width: str,
) -> None:
    pages = FacePages(tmp_path / "out", LinkSigner(b"secret"), keep_s=7 * DAY)
    await asyncio.to_thread(pages.save, JOB, sample_files(shared_dir), sample_report())
    app = web_app(
        pages=pages, viewer_script=viewer_cache / "web" / "model-viewer-4.4.0.min.js", health=lambda: (True, "ok")
    )
    server = WebServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        phone = width == "phone"
        page, problems = await open_viewer_page(
            headed, server.url + pages.path(JOB), viewport=PHONE if phone else DESKTOP, phone=phone
        )
        viewer = await page.wait_for_selector("model-viewer#viewer")
        await ready(page, viewer)
        if phone:
            await check_touch(page, viewer)
        else:
            await check_mouse_and_keys(page, viewer)
        shot = tmp_path / f"face-page-{width}-headed.png"
        await viewer_screenshot(page, viewer, shot)
        assert centre_differs_from_background(shot) > 0.5  # the face is drawn
        assert problems == []  # no console error, no 404 (the favicon included)
    finally:
        await server.stop()


async def test_the_serve_page_turns_the_new_face(
    headed: Any,
    viewer_cache: Path,  # noqa: F811
    stages: Any,
    shared_dir: Path,
    tmp_path: Path,
) -> None:
    from discord_fixtures import PhotoTextToImage, bot_settings
    from mesh_fixtures import reference_face_pipeline
    from route_helpers import studio_on

    settings = bot_settings(tmp_path, cache_dir=viewer_cache, output_dir=tmp_path / "out", web_secret="s3cret")
    pipeline = reference_face_pipeline(stages, shared_dir, PhotoTextToImage())
    async with studio_on(settings, pipeline) as server:
        for width in ("desktop", "phone"):  # a face made and turned at each width, in a context of its own
            phone = width == "phone"
            page, problems = await open_viewer_page(
                headed, server.url + "/", viewport=PHONE if phone else DESKTOP, phone=phone
            )
            await page.fill("#prompt", "a portrait photo of an astronaut")
            await page.fill("#steps", "6")
            await page.click("#go")
            await page.wait_for_selector("#result:not([hidden])", timeout=120_000)
            viewer = await page.wait_for_selector("model-viewer#viewer")
            await ready(page, viewer)
            if phone:
                await check_touch(page, viewer)
            else:
                await check_mouse_and_keys(page, viewer)
            shot = tmp_path / f"serve-page-{width}-headed.png"
            await page.screenshot(path=str(shot), full_page=True, timeout=120_000)
            keep(shot)
            assert await page.evaluate("window.innerWidth") == (PHONE if phone else DESKTOP)["width"]
            assert problems == []
            await page.context.close()
