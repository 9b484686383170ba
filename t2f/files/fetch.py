"""Downloading single files over HTTP(S): streamed, sha256-verified, atomic.

A file is written to ``<name>.part`` beside its destination, checked, then renamed; any failure
removes the part file, so the cache never holds a half-written or unverified file.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from t2f.errors import ModelUnavailable

CHUNK = 1 << 20
USER_AGENT = "t2f/0.1 (+https://github.com/)"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(url: str, dest: Path, *, sha256: str, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` unless a file with the right sha256 is already there.

    Raises
    ------
    ModelUnavailable
        On a network error, an HTML page where a file was expected (a Google Drive quota or
        consent page), or a sha256 mismatch; nothing is left at ``dest`` or beside it.
    """
    if dest.is_file() and sha256_of(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=timeout) as response, part.open("wb") as out:
            if response.headers.get_content_type() == "text/html":
                raise ModelUnavailable(
                    f"Downloading {dest.name} returned a web page instead of the file (quota or sign-in page?); "
                    "try again later or download it by hand and use: t2f prnet import"
                )
            total = int(response.headers.get("Content-Length") or 0) or None
            from tqdm import tqdm

            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, file=sys.stderr
            ) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sha256:
            raise ModelUnavailable(
                f"{dest.name} failed its sha256 check (expected {sha256[:12]}…, got {digest.hexdigest()[:12]}…); "
                "the download was discarded. Try again."
            )
        part.replace(dest)
        return dest
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ModelUnavailable(f"Could not download {dest.name}: {reason}.") from exc
    finally:
        part.unlink(missing_ok=True)


def copy_verified(source: Path, dest: Path, *, sha256: str) -> Path:
    """Copy a local file into the cache after checking its sha256 (same guarantees as :func:`fetch_file`)."""
    if not source.is_file():
        raise ModelUnavailable(f"{source.name} is missing from '{source.parent}'.")
    if sha256_of(source) != sha256:
        raise ModelUnavailable(f"{source.name} in '{source.parent}' does not match the upstream file (sha256 differs).")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        shutil.copyfile(source, part)
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)
    return dest
