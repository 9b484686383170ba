"""Connections under hostile use, on loopback with small limits: half-sent and trickled headers, idle
keep-alive, bodies that never finish, too many connections, oversized, malformed and deeply nested JSON.

Each test waits for the server to close a connection (reading to EOF, bounded by a generous timeout so a
test stops by itself); none asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from web_fixtures import post_face, raw_exchange, running_studio

from t2f.web.connections import BUSY, ConnectionLimits, listen_problem

# Each limit alone is short where a test is about it, so no other limit can be what closed the connection.
QUICK_HEADERS = ConnectionLimits(header_s=0.3, body_s=60, idle_s=60, max_open=8)
QUICK_IDLE = ConnectionLimits(header_s=60, body_s=60, idle_s=0.3, max_open=8)
QUICK_BODY = ConnectionLimits(header_s=60, body_s=0.3, idle_s=60, max_open=8)
PATIENT = ConnectionLimits(header_s=60, body_s=60, idle_s=60, max_open=8)


def request_bytes(host: str, path: str = "/healthz") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def test_a_half_sent_request_is_closed_and_a_patient_server_keeps_its_own(tmp_path: Path) -> None:
    async with (
        running_studio(tmp_path, limits=QUICK_HEADERS) as quick,
        running_studio(tmp_path / "p", limits=PATIENT) as slow,
    ):
        _, patient = await asyncio.open_connection("127.0.0.1", slow.server.port)
        patient.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no empty line: never finished
        answer = await raw_exchange(quick.server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert answer == b""  # closed without an answer
        assert quick.server.open_connections == 0
        assert slow.server.open_connections == 1  # the same request, on a server with a long limit, waits
        patient.close()


async def test_trickled_headers_are_closed_though_bytes_keep_coming(tmp_path: Path) -> None:
    async with running_studio(tmp_path, limits=QUICK_HEADERS) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sent = 0
        try:
            for sent in range(1, 2001):  # a header byte each 20 ms would take 40 s
                writer.write(b"X-Slow: " if sent == 1 else b"a")
                await writer.drain()
                if reader.at_eof() or writer.is_closing():
                    break
                try:
                    if await asyncio.wait_for(reader.read(1), 0.02) == b"":
                        break
                except TimeoutError:
                    continue
        except ConnectionError:
            pass
        writer.close()
        assert sent < 2000  # closed while the bytes were still coming


async def test_an_idle_kept_alive_connection_is_closed(tmp_path: Path) -> None:
    async with running_studio(tmp_path, limits=QUICK_IDLE) as running:
        answer = await raw_exchange(running.server.port, request_bytes("127.0.0.1"))
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"ok\n")  # answered, then closed idle
        assert running.server.open_connections == 0


async def test_a_second_request_gets_its_own_header_clock(tmp_path: Path) -> None:
    async with running_studio(tmp_path, limits=QUICK_HEADERS) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.server.port)
        writer.write(request_bytes("127.0.0.1"))
        assert (await asyncio.wait_for(reader.readuntil(b"ok\n"), 30)).startswith(b"HTTP/1.1 200 OK")
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127")  # kept alive, then a second request half-sent
        assert await asyncio.wait_for(reader.read(), 30) == b""
        writer.close()


async def test_a_body_that_never_finishes_gets_408(tmp_path: Path) -> None:
    async with running_studio(tmp_path, limits=QUICK_BODY, body_timeout_s=0.3) as running:
        port = running.server.port
        head = (
            f"POST /api/faces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n"
        )
        answer = await raw_exchange(port, head.encode() + b'{"prompt": "a fa')
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert answer.endswith(b'{"error": "The request took longer than 0.3 s to arrive."}')
        assert running.backend.requests == [] and running.service.queued() == []


async def test_connections_over_the_cap_get_503_and_retry_after(tmp_path: Path) -> None:
    limits = ConnectionLimits(header_s=60, body_s=60, idle_s=60, max_open=3)
    async with running_studio(tmp_path, limits=limits) as running:
        port = running.server.port
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        while running.server.open_connections < 3:  # accepted by the loop a moment after connect() returns
            await asyncio.sleep(0.01)
        refused = await raw_exchange(port, request_bytes("127.0.0.1"))
        assert refused == BUSY and b"Retry-After: 5\r\n" in refused
        held[0][1].close()
        while running.server.open_connections > 2:
            await asyncio.sleep(0.01)
        _, writer = held[1]
        writer.write(request_bytes("127.0.0.1"))
        assert (await held[1][0].readuntil(b"ok\n")).startswith(b"HTTP/1.1 200 OK")  # a kept one still works
        for _, kept in held[1:]:
            kept.close()


async def test_a_request_without_host_is_not_a_browser_and_is_served(tmp_path: Path) -> None:
    async with running_studio(tmp_path) as running:
        answer = await raw_exchange(running.server.port, b"GET / HTTP/1.0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.0 200 OK") and b"<form" in answer


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b"[" * 30_000 + b"]" * 30_000, 400, "The request is not valid JSON."),  # RecursionError inside json
        (b'{"prompt": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400, "The request is not valid JSON."),
        (b'{"prompt": "a face"', 400, "The request is not valid JSON."),
        (b"\xff\xfe{}", 400, "The request is not valid JSON."),
        (b'["a portrait"]', 400, "The request is not a JSON object."),
        (b'{"prompt": "' + b"a" * 70_000 + b'"}', 413, "The request is larger than 64 KiB."),
        (b'{"prompt": "a portrait photo", "seed": 1e999}', 400, "The seed must be a whole number."),
        (b'{"prompt": "a portrait photo", "steps": "20"}', 400, "The steps must be a whole number."),
        (b'{"prompt": ["a portrait photo"]}', 400, "The prompt must be text."),
    ],
)
async def test_bad_bodies_get_one_line_and_no_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, raw: bytes, status: int, error: str
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_studio(tmp_path) as running:
        assert (await post_face(running.url, raw=raw))[:2] == (status, {"error": error})
        assert running.backend.requests == [] and running.service.queued() == []
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]


def test_listen_problems_are_found_before_listening() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert listen_problem("127.0.0.1", port) == "the port is in use (another server, or another t2f, listens there)"
    assert listen_problem("127.0.0.1", 70_000) == "that is not a port; use 1 to 65535"
    assert listen_problem("127.0.0.1", -1) == "that is not a port; use 1 to 65535"
    assert listen_problem("192.0.2.1", 0) == "the host is not an address of this machine"
    assert listen_problem("no such host name", 0) == "the host is neither an address nor a name this machine resolves"
    assert listen_problem("127.0.0.1", 0) is None
