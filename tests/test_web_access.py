"""Who the web server answers, with real requests on loopback: foreign host names, cross-site posts,
forwarded headers with and without a trusted proxy, IPv6 visitors, the web visitors' share of the queue,
Retry-After, the form's ranges, the model's name on pages, and ``/metrics`` on its own listener."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import aiohttp
import pytest
from web_fixtures import FACE, post_face, running_studio

from t2f.config import Settings
from t2f.faces import FaceRequest
from t2f.report import FaceReport
from t2f.web import visitors
from t2f.web.access import FOREIGN_PAGE, WRONG_HOST, WebAccess, host_name, origin_of
from t2f.web.html import face_page
from t2f.web.links import LinkSigner
from t2f.web.metrics_listener import MetricsListener, metrics_listener
from t2f.web.pages import FacePages
from t2f.web.server import WebServer, web_app

JSON_ONLY = "Send the request as JSON (Content-Type: application/json)."


async def status_and_text(url: str, host: str, path: str = "/") -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url + path, headers={"Host": host}) as answer:
        return answer.status, await answer.text()


# -- Host ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Example.ORG:8080", "example.org"),
        ("[::1]:80", "::1"),
        ("faces.example.org.", "faces.example.org"),
        ("::1", "::1"),
    ],
)
def test_host_names_are_read_without_port_case_or_dot(header: str, name: str) -> None:
    assert host_name(header) == name


def test_origins_are_compared_as_browsers_write_them() -> None:
    assert origin_of("HTTPS", "Faces.example.org:443") == "https://faces.example.org"
    assert origin_of("http", "127.0.0.1:8080") == "http://127.0.0.1:8080"


async def test_a_foreign_host_gets_421_in_one_line(tmp_path: Path) -> None:
    access = WebAccess.of(allowed_hosts=["lan.example"], public_url="https://faces.example.org")
    async with running_studio(tmp_path, access=access) as running:
        port = running.server.port
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "faces.example.org.evil"):
            assert await status_and_text(running.url, host) == (421, WRONG_HOST)
            assert await status_and_text(running.url, host, "/assets/t2f.css") == (421, WRONG_HOST)
        assert WRONG_HOST.count("\n") == 1
        served = [f"127.0.0.1:{port}", "localhost", "[::1]:80", "app.localhost", "FACES.example.org:443", "lan.example"]
        for host in served:
            status, body = await status_and_text(running.url, host)
            assert status == 200 and "<form" in body
        assert await status_and_text(running.url, "evil.example", "/healthz") == (200, "ok\n")  # probes by address
        assert (await post_face(running.url, headers={"Host": "evil.example"}))[:2] == (421, {"text": WRONG_HOST})
        assert running.service.queued() == [] and running.backend.requests == []
    anything = WebAccess.of(allowed_hosts=["*"])
    assert anything.host_allowed("evil.example") and not WebAccess().host_allowed("evil.example")


# -- cross-site requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({"Content-Type": "text/plain"}, 415, JSON_ONLY),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, JSON_ONLY),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415, JSON_ONLY),
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403, FOREIGN_PAGE),  # the request
        ({"Origin": "http://evil.example"}, 403, FOREIGN_PAGE),
        ({"Origin": "null"}, 403, FOREIGN_PAGE),
        ({"Sec-Fetch-Site": "cross-site"}, 403, FOREIGN_PAGE),
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"}, 403, FOREIGN_PAGE),
        ({"Origin": "https://faces.example.org.evil.example"}, 403, FOREIGN_PAGE),
    ],
)
async def test_only_the_apps_own_pages_can_ask_for_work(
    tmp_path: Path, headers: dict[str, str], status: int, error: str
) -> None:
    access = WebAccess.of(public_url="https://faces.example.org")
    async with running_studio(tmp_path, access=access) as running:
        answer = await post_face(running.url, headers=headers)
        assert answer[:2] == (status, {"error": error})
        assert running.service.queued() == [] and running.backend.requests == []


async def test_the_apps_own_page_and_clients_without_a_browser_are_served(tmp_path: Path) -> None:
    access = WebAccess.of(public_url="https://faces.example.org")
    async with running_studio(tmp_path, access=access, user_pending=5) as running:
        own = {"Origin": running.url, "Sec-Fetch-Site": "same-origin"}
        through_proxy = {"Origin": "https://faces.example.org", "Sec-Fetch-Site": "same-origin"}
        for headers in (own, through_proxy, {}, {"Sec-Fetch-Site": "none"}):
            status, answer, _ = await post_face(running.url, headers=headers)
            assert status == 200 and len(answer["job_id"]) == 12
        assert len(running.backend.requests) + len(running.service.queued()) == 4


# -- visitors ------------------------------------------------------------------------------------------------


def test_the_visitor_examples_hold() -> None:
    assert doctest.testmod(visitors).failed == 0


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "forwarded", "visitor"),
    [
        ("10.0.0.2", [], [], "10.0.0.2"),  # a proxy that forwards nothing is its own visitor
        ("10.0.0.2", ["198.51.100.7, 10.0.0.9"], [], "198.51.100.7"),  # a chain of trusted proxies
        ("10.0.0.2", ["1.1.1.1", "198.51.100.7"], [], "198.51.100.7"),  # two header lines, read as one list
        ("10.0.0.2", ["unknown, 10.0.0.9"], [], "10.0.0.9"),  # an unreadable hop: the last trusted one
        ("10.0.0.2", ["198.51.100.7:4711"], [], "198.51.100.7"),
        (
            "10.0.0.2",
            [],
            ['for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"'],
            "2001:db8:cafe::/64",
        ),
        ("10.0.0.2", ["203.0.113.1"], ["for=192.0.2.60"], "203.0.113.1"),  # X-Forwarded-For first
        ("::ffff:192.0.2.1", [], [], "192.0.2.1"),
        ("fe80::1%eth0", [], [], "fe80::/64"),
        (None, [], [], "unknown"),
    ],
)
def test_visitors_behind_trusted_proxies(
    peer: str | None, forwarded_for: list[str], forwarded: list[str], visitor: str
) -> None:
    trusted = WebAccess.of(trusted_proxies=["10.0.0.0/8"]).trusted_proxies
    key = visitors.visitor_key(peer, forwarded_for=forwarded_for, forwarded=forwarded, trusted=trusted)
    assert key == visitor


async def test_forwarded_headers_are_ignored_without_a_trusted_proxy(tmp_path: Path) -> None:
    async with running_studio(tmp_path, user_pending=1) as running:
        assert (await post_face(running.url, headers={"X-Forwarded-For": "198.51.100.1"}))[0] == 200
        status, answer, headers = await post_face(running.url, headers={"X-Forwarded-For": "198.51.100.2"})
        assert (status, answer) == (429, {"error": "You already have 1 faces on the way; wait for one to finish."})
        assert int(headers["Retry-After"]) >= 1


async def test_a_trusted_proxy_names_each_visitor_and_ipv6_counts_by_64(tmp_path: Path) -> None:
    access = WebAccess.of(trusted_proxies=["127.0.0.1"])
    async with running_studio(tmp_path, access=access, user_pending=1) as running:
        asked = [
            ({"X-Forwarded-For": "198.51.100.1"}, 200),
            ({"X-Forwarded-For": "198.51.100.2"}, 200),
            ({"X-Forwarded-For": "6.6.6.6, 198.51.100.1"}, 429),  # a made-up left part changes nothing
            ({"Forwarded": 'for="[2001:db8:1:2::1]:4711"'}, 200),
            ({"Forwarded": 'for="[2001:db8:1:2:ffff::99]"'}, 429),  # the same /64
            ({"Forwarded": 'for="[2001:db8:1:3::1]"'}, 200),
        ]
        answers = [await post_face(running.url, headers=headers) for headers, _ in asked]
        assert [answer[0] for answer in answers] == [status for _, status in asked]
        job_id = answers[0][1]["job_id"]
        async with aiohttp.ClientSession() as session:
            events = f"{running.url}/api/faces/{job_id}/events"
            async with session.get(events, headers={"X-Forwarded-For": "198.51.100.99"}) as answer:
                assert answer.status == 404  # only the visitor who asked may follow a face
            async with session.get(events, headers={"X-Forwarded-For": "198.51.100.1"}) as answer:
                assert answer.status == 200 and (await answer.content.readline()).startswith(b"data: {")


async def test_web_visitors_together_get_a_share_of_the_queue(tmp_path: Path) -> None:
    access = WebAccess.of(trusted_proxies=["127.0.0.1"])
    async with running_studio(tmp_path, access=access, web_pending=2, user_pending=1) as running:
        for number in (1, 2):
            assert (await post_face(running.url, headers={"X-Forwarded-For": f"198.51.100.{number}"}))[0] == 200
        status, answer, headers = await post_face(running.url, headers={"X-Forwarded-For": "198.51.100.3"})
        assert status == 503 and int(headers["Retry-After"]) >= 1
        assert answer == {"error": "The web page has 2 faces on the way, its most; please try again in a minute."}
        # A member on Discord still gets a place in the same queue.
        request = FaceRequest("a portrait photo of an old man", steps=20)
        admission = await running.policy.admit(guild_id=1, channel_id=2, user_id=3, request=request)
        running.policy.release(admission)


async def test_a_cooldown_says_when_to_come_back(tmp_path: Path) -> None:
    async with running_studio(tmp_path, user_pending=5, cooldown_s=30.0) as running:
        assert (await post_face(running.url))[0] == 200
        status, answer, headers = await post_face(running.url)
        assert status == 429 and answer["error"].startswith("Slow down: you can ask for another face in ")
        assert 1 <= int(headers["Retry-After"]) <= 30


# -- one meaning per value -----------------------------------------------------------------------------


async def test_the_form_and_the_server_agree_on_every_range(tmp_path: Path) -> None:
    async with running_studio(tmp_path, user_pending=5) as running:
        _, page = await status_and_text(running.url, f"127.0.0.1:{running.server.port}")
        assert 'id="steps" type="number" min="5" max="50" value="25" required' in page
        assert 'minlength="3" maxlength="300"' in page and 'id="negative" maxlength="300"' in page
        assert f'id="seed" type="number" min="0" max="{2**63 - 1}"' in page
        refused = {
            0: "Steps 0 is not allowed; use 5 to 50.",  # was read as "the default"
            4: "Steps 4 is not allowed; use 5 to 50.",
            51: "Steps 51 is not allowed; use 5 to 50.",
        }
        for steps, message in refused.items():
            assert (await post_face(running.url, {**FACE, "steps": steps}))[:2] == (400, {"error": message})
        assert (await post_face(running.url, {"prompt": FACE["prompt"]}))[0] == 200  # no steps: the default
        assert (await post_face(running.url, {**FACE, "steps": 50}))[0] == 200
        asked = [job.face.steps for job in running.backend.requests + [h.job for h in running.service.queued()]]
        assert sorted(asked) == [25, 50]


# -- the model's name ----------------------------------------------------------------------------------------


def test_pages_name_the_model_never_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "srv" / "models" / "my-sd"
    folder.mkdir(parents=True)
    pages = FacePages(tmp_path / "out", LinkSigner(b"k"), keep_s=86400.0)
    request = FaceRequest("a smiling woman", seed=1)
    for job_id, model, shown in (
        ("0123456789ab", str(folder), "my-sd"),
        ("ba9876543210", "CompVis/sd-v1-4", "CompVis/sd-v1-4"),
    ):
        pages.save(job_id, {}, FaceReport(request=request, model=model))
        saved = json.loads((tmp_path / "out" / job_id / "metadata.json").read_text(encoding="utf-8"))
        assert saved["model"]["id"] == shown
        assert str(tmp_path) not in (tmp_path / "out" / job_id / "metadata.json").read_text(encoding="utf-8")
    old = {"prompt": "a face", "model": {"id": "/home/op/models/sd-15"}}  # a page saved before the fix
    html = face_page(old, expires=2_000_000_000)
    assert "<dd>sd-15</dd>" in html and "/home/op" not in html


# -- /metrics on its own listener -------------------------------------------------------------------------


def scrape_render() -> tuple[bytes, str]:
    return b"t2f_up 1\n", "text/plain; version=0.0.4; charset=utf-8"


async def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers or {}) as answer:
        return answer.status, await answer.text(), answer.headers.get("WWW-Authenticate", "")


async def test_metrics_listener_with_and_without_a_token(tmp_path: Path) -> None:
    guarded = MetricsListener(scrape_render, host="127.0.0.1", port=0, token="s3cret")
    open_one = MetricsListener(scrape_render, host="127.0.0.1", port=0, allowed_hosts=["metrics.lan"])
    public = web_app(pages=None, viewer_script=None, health=lambda: (True, "ok"), metrics=guarded)
    server = WebServer(public, host="127.0.0.1", port=0)
    await server.start()  # the listener starts with the app it was given to
    await open_one.start()
    try:
        assert await scrape(server.url + "/metrics") == (404, "Not found.\n", "")
        needs = (401, "This listener needs a bearer token (Authorization: Bearer ...).\n", "Bearer")
        assert await scrape(guarded.url) == needs
        assert await scrape(guarded.url, {"Authorization": "Bearer wrong"}) == needs
        assert await scrape(guarded.url, {"Authorization": "s3cret"}) == needs
        good = {"Authorization": "Bearer s3cret", "Host": "prometheus-target.example"}  # a page cannot send it
        assert await scrape(guarded.url, good) == (200, "t2f_up 1\n", "")
        assert await scrape(open_one.url) == (200, "t2f_up 1\n", "")
        assert await scrape(open_one.url, {"Host": "metrics.lan:9100"}) == (200, "t2f_up 1\n", "")
        assert await scrape(open_one.url, {"Host": "evil.example"}) == (421, WRONG_HOST, "")  # DNS rebinding
    finally:
        await open_one.stop()
        await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(guarded.url)  # stopped with the app
    assert metrics_listener(scrape_render, Settings()) is None  # T2F_METRICS_PORT=0: off
    settings = Settings(metrics_port=9101, metrics_host="0.0.0.0", metrics_token="t")
    listener = metrics_listener(scrape_render, settings)
    assert listener is not None and listener.server.port == 9101 and listener.token == b"t"
