"""The JSON API's requests and answers: a JSON object in, one sentence out when it is refused.

A request body must say it is JSON (``Content-Type: application/json``, else ``415``): a page on another
site can send a form or ``text/plain`` without asking first, but not JSON. It must arrive within the
body time limit (``408``), fit ``client_max_size`` (``413``), and parse as one JSON object (``400``);
a body nested past Python's recursion limit is a ``400`` like any other bad JSON, not a traceback.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from aiohttp import web

from t2f.web.connections import DEFAULT_LIMITS

BODY_TIMEOUT_S = DEFAULT_LIMITS.body_s
MAX_BODY_BYTES = 64 * 1024  # the app's client_max_size: a face request is a few hundred bytes


class Refusal(Exception):
    """An API answer other than success: an HTTP status, one sentence, and maybe when to try again.

    Parameters
    ----------
    status : the HTTP status (400, 403, 408, 413, 415, 429, 503).
    message : a complete sentence for the page to show.
    retry_after_s : seconds before trying again (429 and 503 send it as ``Retry-After``), or None.
    close : close the connection after answering (a body left half-read cannot be skipped).
    """

    def __init__(self, status: int, message: str, *, retry_after_s: float | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s
        self.close = close

    def response(self) -> web.Response:
        headers = {"Cache-Control": "no-store"}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        response = web.json_response({"error": self.message}, status=self.status, headers=headers)
        if self.close:
            response.force_close()
        return response


async def read_json_object(request: web.Request, *, timeout_s: float = BODY_TIMEOUT_S) -> dict[str, Any]:
    """The request's body as a JSON object, or :class:`Refusal` saying what is wrong with it."""
    if request.content_type != "application/json":
        raise Refusal(415, "Send the request as JSON (Content-Type: application/json).")
    too_large = Refusal(413, f"The request is larger than {MAX_BODY_BYTES // 1024} KiB.", close=True)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    try:
        async with asyncio.timeout(timeout_s):
            data = await request.read()  # refuses more than the app's client_max_size (MAX_BODY_BYTES)
    except TimeoutError:
        raise Refusal(408, f"The request took longer than {timeout_s:g} s to arrive.", close=True) from None
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise Refusal(400, "The request is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Refusal(400, "The request is not a JSON object.")
    return body
