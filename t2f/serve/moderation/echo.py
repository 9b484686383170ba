"""Members' text made safe to quote back to moderators in Discord or a terminal."""

from __future__ import annotations

import re
import unicodedata


def safe_echo(text: str, limit: int = 300) -> str:
    """The text made safe to quote back to moderators in Discord or a terminal.

    Bidi controls and zero-width characters are removed (they could reorder the moderator's own
    message), control characters and line breaks become spaces, backticks become a look-alike so
    the prompt cannot close a code block, and the result is cut to ``limit`` characters.
    """
    kept = (" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else "\u02cb" if c == "`" else c for c in text)
    echoed = re.sub(r"\s+", " ", "".join(c for c in kept if unicodedata.category(c) != "Cf")).strip()
    return echoed if len(echoed) <= limit else echoed[: limit - 1] + "…"
