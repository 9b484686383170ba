"""Signed, expiring links to a face's page: ``/f/<job_id>/<expires>/<signature>/``.

The signature is an HMAC-SHA256 over the job id and the expiry time with a secret only the server
knows, so a link cannot be guessed from a job id, nor its expiry extended. The secret comes from
``T2F_WEB_SECRET`` or, when that is empty, from a file generated on the first start (mode 0600).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

JOB_ID = re.compile(r"[0-9a-f]{12}")  # what the job service's ids look like (secrets.token_hex(6))
SIGNATURE_CHARS = 32  # base64url of the first 24 bytes (192 bits) of the HMAC
SECRET_BYTES = 32


def load_secret(configured: str, path: Path) -> bytes:
    """The signing key: ``configured`` when set, else the one in ``path`` (created on first use).

    Parameters
    ----------
    configured : the ``T2F_WEB_SECRET`` setting; empty means "use or create the file".
    path : where a generated secret lives, e.g. ``<T2F_CACHE_DIR>/web/secret``.
    """
    if configured:
        return configured.encode("utf-8")
    if path.is_file():
        stored = path.read_text(encoding="ascii").strip()
        if stored:  # an empty file (a crash while writing it) is replaced
            return stored.encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    generated = secrets.token_urlsafe(SECRET_BYTES)
    # Created 0600 from the start (not chmod-ed later): nobody else may read the key that signs links.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(generated + "\n")
    return generated.encode("ascii")


@dataclass(frozen=True)
class LinkSigner:
    """Signs and checks ``(job_id, expires)`` pairs; ``expires`` is a Unix time in whole seconds."""

    secret: bytes

    def signature(self, job_id: str, expires: int) -> str:
        mac = hmac.new(self.secret, f"{job_id}:{expires}".encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode("ascii")

    def path(self, job_id: str, expires: int) -> str:
        """The page's URL path (no host), ending in ``/`` so the page's file links are relative."""
        return f"/f/{job_id}/{expires}/{self.signature(job_id, expires)}/"

    def valid(self, job_id: str, expires: str, signature: str, *, now: float) -> bool:
        """Whether the link is well formed, signed by us and not expired (compared in constant time)."""
        if not (JOB_ID.fullmatch(job_id) and expires.isdigit() and len(signature) == SIGNATURE_CHARS):
            return False
        if not hmac.compare_digest(self.signature(job_id, int(expires)), signature):
            return False
        return int(expires) > now
