"""Prompt filtering for moderated servers, robust to the usual disguises.

A prompt is normalised before matching: Unicode compatibility forms folded (NFKC), accents and
zero-width characters removed, case folded, common Cyrillic/Greek look-alikes and leetspeak digits
mapped to Latin letters. Terms match as whole words in that text and, for terms of four or more
letters, also inside the text with every non-letter removed (so "n u d e", "n.u.d.e" and "nüde" all match).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from t2f.errors import T2FError

DEFAULT_BLOCKLIST = Path(__file__).with_name("data") / "blocklist.txt"
ZERO_WIDTH = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\u00ad\u034f\u180e]")
LOOKALIKES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ω": "w",
    # Leetspeak and symbols
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s",
    "!": "i", "|": "l", "€": "e",
})  # fmt: skip
MIN_COLLAPSED_TERM = 4  # shorter terms only match as whole words (avoids "sex" inside "Essex")


class PromptRejected(T2FError):
    """The prompt contains something this server does not allow."""


def normalize(text: str) -> str:
    """Fold a prompt into plain lower-case Latin letters, digits mapped, one space between words."""
    text = ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.casefold().translate(LOOKALIKES)
    return re.sub(r"[^a-z]+", " ", text).strip()


def collapse(text: str) -> str:
    """The normalised text with every space removed."""
    return normalize(text).replace(" ", "")


@dataclass(frozen=True)
class PromptFilter:
    """Blocked words/phrases (normalised) and regular expressions (matched against the normalised text)."""

    terms: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def from_lines(cls, lines: list[str]) -> PromptFilter:
        """Lines: a word or phrase, ``re:<regex>``, blank, or ``#`` comment."""
        terms, patterns = [], []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("re:"):
                patterns.append(re.compile(line[3:]))
            elif normalize(line):
                terms.append(normalize(line))
        return cls(tuple(dict.fromkeys(terms)), tuple(patterns))

    @classmethod
    def from_file(cls, path: Path | None = None) -> PromptFilter:
        return cls.from_lines((path or DEFAULT_BLOCKLIST).read_text(encoding="utf-8").splitlines())

    def with_terms(self, extra: list[str]) -> PromptFilter:
        """This filter plus a server's own terms."""
        more = PromptFilter.from_lines(extra)
        return PromptFilter(tuple(dict.fromkeys(self.terms + more.terms)), self.patterns + more.patterns)

    def first_match(self, prompt: str) -> str | None:
        """The blocked term or pattern the prompt hits, or ``None``."""
        spaced = f" {normalize(prompt)} "
        squeezed = spaced.replace(" ", "")
        for term in self.terms:
            if f" {term} " in spaced:
                return term
            if len(term.replace(" ", "")) >= MIN_COLLAPSED_TERM and term.replace(" ", "") in squeezed:
                return term
        for pattern in self.patterns:
            if pattern.search(spaced.strip()):
                return pattern.pattern
        return None

    def check(self, prompt: str) -> None:
        """Raise :class:`PromptRejected` when the prompt hits the filter (the term is not echoed back)."""
        if self.first_match(prompt) is not None:
            raise PromptRejected("Your prompt contains words this server does not allow. Please rephrase it.")
