"""The files and folders a command names, checked before any work: inputs read with a cap, outputs creatable.

A command line is typed by a person who may point it at anything: ``/dev/zero``, a named pipe, a folder,
a 20 GB file, a folder under ``/proc`` or under a regular file. Each is refused in one sentence before
a model loads, instead of a read that never ends or an ``OSError`` after minutes of painting.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from pathlib import Path

from t2f.errors import InvalidInput

MIB = 1 << 20
# The largest image file read: a 100-megapixel picture (images.MAX_PIXELS) as a PNG is up to ~300 MB,
# as a JPEG far less. Larger files are refused before a byte is read.
IMAGE_FILE_BYTES = 320 * MIB


def _shown(path: Path | str, limit: int = 100) -> str:
    """The path as the person typed it, cut so a pasted novel is not echoed whole."""
    text = str(path)
    return text if len(text) <= limit else text[:limit] + "…"


def read_input_file(path: Path, *, what: str, max_bytes: int, pipes: bool = False) -> bytes:
    """The bytes of ``path``, read only when it is a regular file of at most ``max_bytes`` bytes.

    The file is opened without blocking and judged by ``fstat`` of that open file (so a file swapped
    for a pipe between the check and the read is still caught); the read itself stops at
    ``max_bytes + 1``, so a file that grows while read is refused too.

    Parameters
    ----------
    path : the file named on the command line.
    what : how messages name it, e.g. ``"The image"`` or ``"--env-file"``.
    max_bytes : the most this input may hold.
    pipes : also read a named pipe or ``<(process substitution)``, still at most ``max_bytes``.

    Raises
    ------
    InvalidInput
        When the file is missing, unreadable, a folder, a device, a socket, a pipe (unless ``pipes``),
        or larger than ``max_bytes``.
    """
    shown = _shown(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InvalidInput(f"{what} {shown} does not exist.") from None
    except IsADirectoryError:
        raise InvalidInput(f"{what} {shown} is a folder; give a file.") from None
    except OSError as exc:
        raise InvalidInput(f"{what} {shown} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    try:
        _check_open_file(fd, what=f"{what} {shown}", max_bytes=max_bytes, pipes=pipes)
    except InvalidInput:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise InvalidInput(f"{what} {shown} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    if len(data) > max_bytes:
        raise InvalidInput(f"{what} {shown} is larger than {_size(max_bytes)}, the most t2f reads.")
    return data


def _check_open_file(fd: int, *, what: str, max_bytes: int, pipes: bool) -> None:
    """Judge an open file by ``fstat``: a regular file within the cap, or a pipe when ``pipes``."""
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInput(f"{what} is a folder; give a file.")
    if stat.S_ISFIFO(info.st_mode) and pipes:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)  # now wait for the writer
    elif not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{what} is not a regular file (a device, pipe or socket); give a file.")
    elif info.st_size > max_bytes:
        raise InvalidInput(f"{what} is {_size(info.st_size)}; the most t2f reads is {_size(max_bytes)}.")


def _size(count: int) -> str:
    return f"{count / MIB:,.1f} MiB" if count >= MIB else f"{count:,} bytes"


def writable_folder(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried, not guessed: ``os.access`` says yes to root everywhere)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".t2f-check-"):
            return True
    except OSError:
        return False


def check_output_folder(folder: Path, *, what: str) -> Path:
    """Return ``folder`` when it is, or can become, a folder this user may write; nothing is created.

    Raises
    ------
    InvalidInput
        When ``folder`` is a file, lies under a file, or neither it nor its nearest existing parent
        takes a new file (a read-only place, ``/proc``, another user's folder).
    """
    shown = _shown(folder)
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{what} {shown} is a file; give a folder (it is created when missing).")
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidInput(f"{what} {shown} cannot be created: {_shown(existing)} is a file, not a folder.")
    if not writable_folder(existing):
        where = "" if existing == folder.absolute() else f" in {_shown(existing)}"
        raise InvalidInput(f"{what} {shown} cannot be written: this user may not create files{where}.")
    return folder
