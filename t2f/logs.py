"""Logging for ``bot.py`` and ``t2f``: level and format from settings, and third-party start-up noise off.

Only the two entry points call :func:`configure_logging`; library modules just log. ``T2F_LOG_FORMAT=json``
writes one JSON object per line (time, level, logger, message, plus any ``extra=`` fields, such as the job
lines of :mod:`t2f.serve.joblog`) for a log collector.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

# What every LogRecord carries; anything else on a record came from ``extra=`` and goes into the JSON object.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Lines that say nothing an operator can act on, by logger and the start of the message.
NOISE = (
    ("discord.client", "PyNaCl is not installed"),  # t2f never joins voice channels
    ("discord.client", "davey is not installed"),
    ("py.warnings", "Failed to load image Python extension"),  # torchvision's image extension notice
    ("py.warnings", "The torchvision.datapoints and torchvision.transforms.v2 namespaces"),
)
NOISE_WORDS = ("torchvision",)  # transformers' and timm's "torchvision is not available" notices


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({key: value for key, value in vars(record).items() if key not in _RECORD_FIELDS})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (as ``logging.lastResort`` does), so a
    replaced stderr (tests, a daemon manager) never leaves the handler holding a closed stream."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it; the property decides
        pass


class NoiseFilter(logging.Filter):
    """Drops the third-party notices in :data:`NOISE` (unless debugging, when the handler has no filter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(record.name == name and message.startswith(start) for name, start in NOISE):
            return False
        return not (record.levelno < logging.ERROR and any(word in message for word in NOISE_WORDS))


def quiet_third_party() -> None:
    """Set the variables TensorFlow, diffusers and transformers read when they load (so before they do).

    ``setdefault``: an operator who sets one of them keeps their value.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up lines (MTCNN, checkpoint import)
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # ... and its oneDNN notice
    for variable in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        os.environ.setdefault(variable, "error")


def configure_logging(level: str, log_format: str, *, debug: bool = False) -> None:
    """Send every logger to stderr at ``level`` in ``log_format`` (``text`` or ``json``).

    ``debug`` shows everything, third-party notices included. Replaces the handler a previous call
    installed (and only that one).
    """
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    if not debug:
        handler.addFilter(NoiseFilter())
        quiet_third_party()
    logging.captureWarnings(True)  # library warnings become log lines, so the filter and the format apply
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else level.upper())
