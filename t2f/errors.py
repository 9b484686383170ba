"""One error hierarchy for t2f.

Every error a user can cause or meet carries ``user_message``: a complete sentence that is safe
to show in a chat or a terminal (no traceback, no absolute path, no secret). The CLI prints it on
one line; the bot sends it ephemerally.
"""

from __future__ import annotations

import gc
import sys
import traceback


class T2FError(Exception):
    """Root of every error t2f raises on purpose."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class ConfigError(T2FError):
    """A setting has a value t2f cannot use; the message names the variable and what it allows."""


class ModelUnavailable(T2FError):
    """Weights are missing or unreadable; the message names the model and the command that fetches it."""


class InvalidRequest(T2FError):
    """A generation request asks for something the stage cannot do (bad size, steps, batch mix)."""


class InvalidInput(T2FError):
    """A file, folder or address named on the command line cannot be used (missing, special, too large, taken)."""


class InvalidImage(T2FError):
    """An input file is not an image t2f can read, or is unusable (empty, absurdly large)."""


class NoFaceFound(T2FError):
    """The face detector found no face (or only one too small to reconstruct)."""


# What a RuntimeError says when the card was full for something other than the caching allocator: a
# thread's first cuDNN or cuBLAS call makes its handle and workspace there (the faces and export threads
# make theirs in their first job, maybe while painting has filled the card), and CUDA's own allocations.
_OUT_OF_MEMORY_SAID = (
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_NOT_INITIALIZED",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDA error: out of memory",
    "CUDA out of memory",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the GPU was out of memory: torch.OutOfMemoryError (CUDA, MPS and XPU raise it),
    or a RuntimeError from cuDNN, cuBLAS or CUDA saying so. By name, so no module needs torch to ask."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(said in str(exc) for said in _OUT_OF_MEMORY_SAID)


def release_failed_call(exc: BaseException) -> None:
    """Let go of what the failed call behind ``exc`` held, then hand the CUDA allocator's cached blocks
    back, so that a retry after an out-of-memory error starts clean.

    While an ``except`` block runs, the exception's traceback keeps every frame of the failed call alive,
    with its locals: a UNet's activations, a batch's latents. A retry made there would run without that
    memory (PyTorch's FAQ: "My out of memory exception handler can't allocate memory"). The frames still
    running (the handler's own) are left as they are.
    """
    traceback.clear_frames(exc.__traceback__)
    gc.collect()  # what the frames' locals held in reference cycles
    torch = sys.modules.get("torch")  # loaded wherever a GPU ran out of memory; this module never imports it
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def first_line(exc: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message``, cut at ``limit`` characters, for a log line: inductor's and
    CUDA's errors run to pages."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
