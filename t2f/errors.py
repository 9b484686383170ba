"""One error hierarchy for t2f.

Every error a user can cause or meet carries ``user_message``: a complete sentence that is safe
to show in a chat or a terminal (no traceback, no absolute path, no secret). The CLI prints it on
one line; the bot sends it ephemerally.
"""

from __future__ import annotations


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


class InvalidImage(T2FError):
    """An input file is not an image t2f can read, or is unusable (empty, absurdly large)."""


class NoFaceFound(T2FError):
    """The face detector found no face (or only one too small to reconstruct)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA, MPS and XPU raise it), by name so no module needs torch to ask."""
    return type(exc).__name__ == "OutOfMemoryError"
