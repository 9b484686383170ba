"""The shipped lexicons: one folder per language in ``data/``, one file per category, loaded and indexed.

Each file holds one category (``sexual.txt``, ``minors.txt``, ``suggestive.txt``, ``violence.txt``,
``self-harm.txt``, ``hate.txt``) or a helper list (``clothing.txt``, ``allow.txt``, ``common.txt``).
Inside a file, a line ``[role]`` starts a section whose entries play that role in the combination
rules (``t2f.serve.moderation.rules``); entries before any section play the file's first role.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType

from t2f.serve.moderation.entries import Entry, LexiconError, parse_line
from t2f.serve.moderation.fold import (
    CJK,
    EMOJI_NOISE,
    cjk_fold,
    cjk_readings,
    cyrillic_fold,
    cyrillic_readings,
    emoji_in,
    latin_readings,
    normalize,
    plain_reading,
)
from t2f.serve.moderation.index import Hit, SubstringIndex, WordIndex

DATA = Path(__file__).with_name("data")
LANGUAGES = ("en", "de", "es", "fr", "pt", "it", "nl", "pl", "ru", "tr", "ja", "zh", "ko", "emoji")
LANGUAGE_NAMES = MappingProxyType(
    {
        "en": "English",
        "de": "German",
        "es": "Spanish",
        "fr": "French",
        "pt": "Portuguese",
        "it": "Italian",
        "nl": "Dutch",
        "pl": "Polish",
        "ru": "Russian",
        "tr": "Turkish",
        "ja": "Japanese",
        "zh": "Chinese",
        "ko": "Korean",
        "emoji": "emoji",
    }
)
SCRIPTS = MappingProxyType({"ru": "cyrillic", "ja": "cjk", "zh": "cjk", "ko": "cjk", "emoji": "emoji"})
ENDINGS = frozenset({"en"})  # languages whose plain words also match their regular endings
# The files of a language folder and the roles their sections may name; the first is a file's default.
KINDS = MappingProxyType(
    {
        "sexual": ("term", "part", "exposure"),
        "minors": ("term", "young", "adult"),
        "suggestive": ("term",),
        "violence": ("term",),
        "self-harm": ("term",),
        "hate": ("term",),
        "clothing": ("clothing", "garment", "absence", "removed"),
        "allow": ("allow",),
        "common": ("common",),
    }
)
SECTION = re.compile(r"^\[([a-z-]+)\]$")
KANA = re.compile("[\u3040-\u30ff]")
HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")


def _cyrillic_words(text: str) -> str:
    return re.sub(r"[^\u0400-\u04ff]+", " ", cyrillic_fold(text)).strip()


FOLDS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {
        "latin": normalize,
        "cyrillic": _cyrillic_words,
        "cjk": cjk_fold,
        "emoji": lambda text: EMOJI_NOISE.sub("", text),
    }
)


def parse_file(lines: Iterable[str], *, language: str, kind: str, where: str = "") -> list[Entry]:
    """The entries of one lexicon file's lines.

    Raises
    ------
    LexiconError
        On a line t2f cannot read, or a section this kind of file has no role for; the message names
        ``where`` (the file) and the line number.
    """
    roles = KINDS[kind]
    script = SCRIPTS.get(language, "latin")
    role, entries = roles[0], list[Entry]()
    for number, line in enumerate(lines, start=1):
        if section := SECTION.match(line.strip()):
            if section[1] not in roles:
                sections = ", ".join(roles)
                raise LexiconError(f"{where}:{number}: a {kind} file has no [{section[1]}] section ({sections})")
            role = section[1]
            continue
        try:
            entries += parse_line(
                line,
                language=language,
                kind=kind,
                role=role,
                script=script,
                fold=FOLDS[script],
                endings=language in ENDINGS,
            )
        except LexiconError as exc:
            raise LexiconError(f"{where}:{number}: {exc.user_message}") from None
    return entries


@dataclass(frozen=True)
class Scan:
    """Every lexicon entry found in one text, and which languages its common words point to."""

    hits: tuple[Hit, ...]
    languages: Mapping[str, int] = field(default_factory=dict)


class Lexicon:
    """Every language's entries, indexed by script. Build with :meth:`load` (cached for the shipped data)."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        by_script: dict[str, list[Entry]] = defaultdict(list)
        self._common: dict[str, set[str]] = defaultdict(set)
        self.entries = tuple(entries)
        for entry in self.entries:
            if entry.role == "common":
                self._common[FOLDS[SCRIPTS.get(entry.language, "latin")](entry.text)].add(entry.language)
            elif entry.pattern is not None:
                by_script["pattern"].append(entry)
            else:
                by_script[SCRIPTS.get(entry.language, "latin")].append(entry)
        self._latin = WordIndex(by_script["latin"])
        self._cyrillic = WordIndex(by_script["cyrillic"])
        self._cjk = SubstringIndex(e for e in by_script["cjk"] if e.bounded == (False, False))
        self._cjk_bounded = SubstringIndex(e for e in by_script["cjk"] if e.bounded != (False, False))
        self._emoji = tuple(by_script["emoji"])
        self._patterns = tuple(by_script["pattern"])

    @classmethod
    def load(cls, folder: Path = DATA) -> Lexicon:
        """Every ``<language>/<kind>.txt`` under ``folder`` (the shipped one is parsed once per process)."""
        return _shipped() if folder == DATA else cls(_read(folder))

    def scan(self, text: str) -> Scan:
        """Every entry in ``text``, in every reading (Latin, Cyrillic, CJK, plain, emoji)."""
        hits: list[Hit] = []
        latin = latin_readings(text)
        for number, reading in enumerate(latin):
            hits += self._latin.scan(reading, f"latin{number}")
        cyrillic = cyrillic_readings(text)
        for number, reading in enumerate(cyrillic):
            hits += self._cyrillic.scan(reading, f"cyrillic{number}")
        compact, spaced = cjk_readings(text)
        if compact:
            hits += self._cjk.scan(compact, "cjk") + self._cjk_bounded.scan(spaced, "cjk-spaced")
        if self._patterns:
            plain = plain_reading(text)
            hits += [Hit(entry, "plain") for entry in self._patterns if entry.pattern and entry.pattern.search(plain)]
        if self._emoji and (emoji := emoji_in(text)):
            hits += [Hit(entry, "emoji") for entry in self._emoji if entry.emoji <= emoji]
        return Scan(tuple(hits), self._languages(latin[:1] + cyrillic[:1], text))

    def _languages(self, readings: list[str], text: str) -> Counter[str]:
        """How many of the text's words are common words of each language; CJK counted by script."""
        counts: Counter[str] = Counter()
        for reading in readings:
            words = reading.split()
            short = [len(word) == 1 for word in ["", *words, ""]]  # padded: short[i + 1] is words[i]
            for index, word in enumerate(words):
                # A one-letter word counts ("w" is Polish, "o" Portuguese) unless it is spelled out ("a n u d e").
                if word in self._common and not (short[index + 1] and (short[index] or short[index + 2])):
                    counts.update(self._common[word])
        if CJK.search(text):
            counts["ja" if KANA.search(text) else "ko" if HANGUL.search(text) else "zh"] += 3
        return counts


def _read(folder: Path) -> list[Entry]:
    entries: list[Entry] = []
    for language in LANGUAGES:
        for kind in KINDS:
            path = folder / language / f"{kind}.txt"
            if path.is_file():
                lines = path.read_text(encoding="utf-8").splitlines()
                entries += parse_file(lines, language=language, kind=kind, where=f"{language}/{kind}.txt")
    return entries


@cache
def _shipped() -> Lexicon:
    return Lexicon(_read(DATA))


__all__ = ["DATA", "KINDS", "LANGUAGES", "LANGUAGE_NAMES", "Lexicon", "LexiconError", "Scan", "parse_file"]
