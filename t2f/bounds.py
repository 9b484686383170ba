"""Every allowed range of t2f, declared once.

Settings (``t2f.config``), the stages' request checks, the Discord commands' ``Range`` options and
``/faceadmin`` all read these, so a bound changes in one place. Two families:

- what the library accepts (a CLI user or an operator may ask for any of it);
- what a chat member may ask for (narrower: a shared GPU serves everyone).
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from typing import Generic, TypeVar

from t2f.errors import InvalidRequest
from t2f.faces import FaceRequest

Number = TypeVar("Number", int, float)
PROMPT_NEEDS_WORDS = "The prompt needs words: emoji alone do not describe a face. Describe the face you want in words."


@dataclass(frozen=True)
class Bound(Generic[Number]):
    """A closed range ``low..high`` of ints or floats."""

    low: Number
    high: Number

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high

    @property
    def text(self) -> str:
        """``low..high`` as settings and messages write it."""
        return f"{number_text(self.low)}..{number_text(self.high)}"

    def check(self, value: Number, what: str) -> Number:
        """Return ``value`` or raise :class:`InvalidRequest` naming ``what`` and the range."""
        if value not in self:
            raise InvalidRequest(
                f"{what} {number_text(value)} is not allowed; use {number_text(self.low)} to {number_text(self.high)}."
            )
        return value


def number_text(value: float) -> str:
    """An int in full (seeds have 19 digits), a float in its shortest form (7.5, 30)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


# What the text-to-image stage accepts.
STEPS = Bound(1, 150)
GUIDANCE = Bound(0.0, 30.0)
IMAGE_SIZE = Bound(64, 1024)
IMAGE_SIZE_MULTIPLE = 8  # the VAE downsamples by 8
SEED = Bound(0, 2**63 - 1)  # torch.Generator.manual_seed takes a signed 64-bit integer
# How a face is painted: ``quality`` (the full denoising loop) or ``fast`` (what T2F_FAST_STEPS,
# T2F_KARRAS_SIGMAS and T2F_DEEPCACHE_INTERVAL switch on; README "GPU fast path").
PROFILES = ("quality", "fast")

# What a chat member may ask for in one request.
MEMBER_PROMPT_CHARS = Bound(3, 300)
MEMBER_NEGATIVE_CHARS = Bound(0, 300)
MEMBER_STEPS = Bound(5, 50)
MEMBER_GUIDANCE = Bound(1.0, 15.0)

# The fast profile: DeepCache's refresh interval (0 or 1: off) and branch (outer block pairs; SD 1.x has 4).
DEEPCACHE_INTERVAL = Bound(0, 10)
DEEPCACHE_BRANCH = Bound(1, 3)

# The service and admission limits (bot-wide settings, and a server's own through /faceadmin).
MAX_BATCH = Bound(1, 32)
EXPORT_THREADS = Bound(0, 32)  # 0: automatic (default_export_threads)


def default_export_threads(*, on_gpu: bool) -> int:
    """Threads writing result files when ``T2F_EXPORT_THREADS`` is 0: one where painting runs on the CPU (it
    already uses every core), else half the cores up to 4 (a face's files cost ~0.32 s of CPU, mostly in
    numpy and zlib, which release the GIL: one thread would cap a GPU's burst)."""
    return min(4, max(1, (os.cpu_count() or 2) // 2)) if on_gpu else 1


QUEUE_CAPACITY = Bound(1, 1000)
USER_PENDING = Bound(1, 20)
COOLDOWN_S = Bound(0.0, 3600.0)  # the policy forgets requests older than the longest cooldown
DAILY_QUOTA = Bound(1, 10000)
JOB_TIMEOUT_S = Bound(10.0, 3600.0)
PROGRESS_INTERVAL_S = Bound(1.0, 60.0)
BLOCKED_TERM_CHARS = Bound(2, 100)

# The face gate and repaints.
MAX_REPAINTS = Bound(0, 5)
GATE_ANGLE_DEG = Bound(5.0, 90.0)
GATE_MIN_FACE = Bound(0.0, 0.9)  # face size over the image's shorter side
RAY_REPLICAS = Bound(1, 64)  # GPU workers of the Ray Serve backend


def check_image_size(size: int) -> int:
    """Return ``size`` or raise :class:`InvalidRequest`: 64..1024 pixels, a multiple of 8."""
    if size not in IMAGE_SIZE or size % IMAGE_SIZE_MULTIPLE:
        raise InvalidRequest(
            f"Image size {size} is not allowed; use {IMAGE_SIZE.low} to {IMAGE_SIZE.high} pixels, "
            f"a multiple of {IMAGE_SIZE_MULTIPLE}."
        )
    return size


def check_face_request(request: FaceRequest) -> FaceRequest:
    """Return ``request`` when a text-to-image stage can paint it, else raise :class:`InvalidRequest`.

    Pure and cheap: callers check a request before any model loads and before it joins a batch.
    A prompt needs at least one letter or digit (whitespace, punctuation or invisible characters alone
    describe nothing; emoji alone get their own sentence), and neither prompt may hold a lone UTF-16
    surrogate.
    """
    if not any(character.isalnum() for character in request.prompt):
        if any(unicodedata.category(character) in ("So", "Sk") for character in request.prompt):
            raise InvalidRequest(PROMPT_NEEDS_WORDS)
        raise InvalidRequest("The prompt is empty; describe the face you want.")
    # Lone UTF-16 surrogates are no text: they cannot be stored, logged or encoded (UnicodeEncodeError).
    if any("\ud800" <= character <= "\udfff" for character in request.prompt + request.negative_prompt):
        raise InvalidRequest("The prompt has characters that are not text; please type it again.")
    check_image_size(request.size)
    STEPS.check(request.steps, "Steps")
    GUIDANCE.check(request.guidance, "Guidance")
    SEED.check(request.seed, "Seed")
    if request.profile not in PROFILES:
        raise InvalidRequest(f"Profile {request.profile!r} is not allowed; use {' or '.join(PROFILES)}.")
    return request


# The web server (t2f.web): its port (0: off), how long a face's page and files live, and how many faces
# anonymous web visitors may have on the way together.
WEB_PORT = Bound(0, 65535)
KEEP_DAYS = Bound(1, 3650)
WEB_PENDING = Bound(1, 1000)
RETENTION_DAYS = Bound(1, 3650)  # how long a job's record is kept (T2F_RETENTION_DAYS)
