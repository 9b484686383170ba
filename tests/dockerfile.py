"""The Dockerfile read as data: its ENV, ENTRYPOINT and CMD, for the tests that check them or run them."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` for every instruction, continuation lines joined, comments dropped."""
    joined = DOCKERFILE.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, arguments = line.strip().partition(" ")
            found.append((name.upper(), arguments.strip()))
    return found


def image_env() -> dict[str, str]:
    """The ENV of the image (``ENV A=1 B=2`` pairs, quoted values unquoted)."""
    pairs = [pair for name, arguments in instructions() if name == "ENV" for pair in shlex.split(arguments)]
    return dict(pair.split("=", 1) for pair in pairs)


def exec_form(instruction: str) -> list[str]:
    """The last ``ENTRYPOINT`` or ``CMD`` (the one Docker uses), which must be in exec (JSON array) form."""
    (arguments, *_) = [arguments for name, arguments in reversed(instructions()) if name == instruction]
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value), arguments
    return value
