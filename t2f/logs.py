"""Logging for ``bot.py`` and ``t2f``: level and format from settings, and third-party start-up noise off.

Only the two entry points call :func:`configure_logging`; library modules just log. ``T2F_LOG_FORMAT=json``
writes one JSON object per line (time, level, logger, message, plus any ``extra=`` fields, such as the job
lines of :mod:`t2f.serve.joblog`) for a log collector, and then every line on stderr is one: progress bars
are off, Python warnings and third-party loggers go through the same formatter, the line that ends a failed
run is a record (:func:`say`), and whatever a library still writes to stderr itself is wrapped
(:class:`JsonLines`).
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
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
# What turns progress bars off where they are drawn: plain tqdm (diffusers' "Loading pipeline components"),
# and the hub's and transformers' bars ("Loading weights", downloads). Read when those libraries load.
PROGRESS_BARS_OFF = (("TQDM_DISABLE", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"))
# Libraries that give their root logger a stderr handler of their own and stop it propagating.
OWN_HANDLER_LIBRARIES = ("diffusers", "transformers")
STRAY_LOGGER = "stderr"  # the logger name of a line a library wrote to stderr itself


def wants_json(env: Mapping[str, str]) -> bool:
    """Whether ``env`` asks for JSON logs, read raw: for a run that fails before its settings are parsed."""
    return env.get("T2F_LOG_FORMAT", "").strip().lower() == "json"


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


def json_record(message: str, *, level: int, logger: str) -> str:
    """``message`` as one JSON log line, without going through a logger (no handler, level or filter)."""
    return JsonFormatter().format(logging.LogRecord(logger, level, "", 0, message, None, None))


class JsonLines(io.TextIOBase):
    """``sys.stderr`` in JSON mode: each line written here that is not already a JSON object becomes one.

    Catches what bypasses logging: a library's own stderr handler (diffusers and transformers keep one),
    a progress bar someone forgot to turn off (only the last redraw of a ``\\r`` line is kept), a crash
    dump. Such a line is a ``WARNING`` of the logger ``stderr``: nothing says how grave it is.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._partial = ""
        self._lock = threading.Lock()
        atexit.register(self.finish)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:  # faulthandler and subprocesses write to the real descriptor
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
            for line in lines:
                self._emit(line)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def finish(self) -> None:
        """Write a last line that never got its newline (at exit)."""
        with self._lock:
            partial, self._partial = self._partial, ""
            self._emit(partial)
        self.stream.flush()

    def _emit(self, line: str) -> None:
        shown = next((part for part in reversed(line.split("\r")) if part.strip()), "").rstrip()
        if not shown:
            return
        if shown.startswith("{"):
            try:
                if isinstance(json.loads(shown), dict):
                    self.stream.write(shown + "\n")
                    return
            except ValueError:
                pass
        self.stream.write(json_record(shown, level=logging.WARNING, logger=STRAY_LOGGER) + "\n")


def real_stderr() -> TextIO:
    """The stream under :class:`JsonLines` when it is installed, else ``sys.stderr``."""
    return sys.stderr.stream if isinstance(sys.stderr, JsonLines) else sys.stderr


def say(line: str, *, json_lines: bool, level: int = logging.WARNING, logger: str = "t2f") -> None:
    """One line for the operator on stderr (a note, the error that ends a run): as is, or as a JSON record.

    Not a log call: in text mode the line must read exactly as written, with no time or level before it.
    """
    print(json_record(line, level=level, logger=logger) if json_lines else line, file=real_stderr(), flush=True)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (as ``logging.lastResort`` does), so a
    replaced stderr (tests, a daemon manager) never leaves the handler holding a closed stream. Under
    :class:`JsonLines` it writes to the stream below: its lines are JSON already."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return real_stderr()

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


def adopt_library_loggers() -> None:
    """Send the loggers of :data:`OWN_HANDLER_LIBRARIES` that exist now through the root's handler."""
    for name in OWN_HANDLER_LIBRARIES:
        if name not in logging.root.manager.loggerDict:
            continue  # not loaded yet: its handler will write to stderr, which JsonLines wraps
        library = logging.getLogger(name)
        for own in [h for h in library.handlers if not isinstance(h, StderrHandler)]:
            library.removeHandler(own)
        library.propagate = True


def _log_uncaught(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> None:
    logging.getLogger("t2f").critical("uncaught %s", kind.__name__, exc_info=(kind, value, trace))


def _log_thread_crash(crash: threading.ExceptHookArgs) -> None:
    if crash.exc_value is not None and not isinstance(crash.exc_value, SystemExit):  # as threading's own hook
        _log_uncaught(crash.exc_type, crash.exc_value, crash.exc_traceback)


def _json_stderr(on: bool) -> None:
    """Wrap ``sys.stderr`` in :class:`JsonLines` (and log uncaught exceptions as one record), or unwrap it."""
    if on:
        for name, value in PROGRESS_BARS_OFF:
            os.environ.setdefault(name, value)
        if not isinstance(sys.stderr, JsonLines):
            sys.stderr = JsonLines(sys.stderr)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread_crash
        adopt_library_loggers()
    elif isinstance(sys.stderr, JsonLines):
        sys.stderr.finish()
        sys.stderr = sys.stderr.stream
        sys.excepthook, threading.excepthook = sys.__excepthook__, threading.__excepthook__


def configure_logging(level: str, log_format: str, *, debug: bool = False) -> None:
    """Send every logger to stderr at ``level`` in ``log_format`` (``text`` or ``json``).

    ``debug`` shows everything, third-party notices included. Replaces the handler a previous call
    installed (and only that one). In JSON mode every line on stderr is a JSON object (module docstring).
    """
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    if not debug:
        handler.addFilter(NoiseFilter())
        quiet_third_party()
    logging.captureWarnings(True)  # library warnings become log lines, so the filter and the format apply
    _json_stderr(log_format == "json")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else level.upper())
