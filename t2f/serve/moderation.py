"""Prompt filtering for moderated servers, robust to the usual disguises and kind to innocent words.

A prompt is folded before matching: NFKC, format characters (bidi controls, zero-width) dropped,
Unicode look-alikes mapped to Latin by the UTS #39 confusables table (package
``confusable-homoglyphs``), accents removed, case folded, leetspeak mapped. A term then hits only as
a whole word (with its regular English endings, and with letters repeated: "nnuuddee"), or spelled out
one letter at a time ("s e x", "n.u.d.e"); never inside another word ("Essex", "analyst"). Phrases of
the allow-list ("Al Gore", "blood orange") are removed first. Text after a right-to-left override is
also read reversed, as it is displayed. The lists are plain text files in ``t2f/serve/data`` (syntax in
``blocklist.txt``), so moderators can read and tune them.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from confusable_homoglyphs.utils import load as _load_confusables

from t2f.errors import T2FError
from t2f.serve.pattern_check import server_pattern_problem

log = logging.getLogger(__name__)
DATA = Path(__file__).with_name("data")
DEFAULT_BLOCKLIST = DATA / "blocklist.txt"
DEFAULT_ALLOWLIST = DATA / "allowlist.txt"
DEFAULT_NEGATIVE_BLOCKLIST = DATA / "negative_blocklist.txt"
SAFE_WHEN_NEGATED = ("=nsfw", "nsfw")
PROMPT_MESSAGE = "Your prompt contains words this server does not allow. Please rephrase it."
NEGATIVE_MESSAGE = "Your negative prompt contains words this server does not allow. Please rephrase it."

# Overrides and embeddings (RLO, RLE) display the Latin letters after them right to left, up to the
# closing PDF/PDI or the end: "\u202enamow edun" reads "nude woman" on screen.
REVERSED_SPAN = re.compile("[\u202e\u202b]([^\u202c\u2069]*)")
LEET = MappingProxyType(str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g"}))
LEET_SYMBOLS = MappingProxyType(str.maketrans({"@": "a", "$": "s", "!": "i", "|": "l", "€": "e"}))
FOREIGN = re.compile(r"[^\W\d_a-z]")  # letters outside a-z that survived folding
UNKNOWN = "?"  # such a letter inside a mostly-Latin word ("nμde"): it may stand for any letter
MIN_WILDCARD_TERM = 4  # shorter terms never match an unknown letter ("se?" would hit too much)
# Regular endings a plain term also matches with ("nude" -> "nudes", "nudity"; "kill" -> "killing").
# No "er"/"ist": "killer whale" and "sexist" are not what the list means.
SUFFIXES = "s|es|d|ed|ing|y|ity|ities|ness|ion|ions|ment|ments|ly"
E_DROP_SUFFIXES = "ing|y|ity|ities|ion|ions"  # nude -> nudity, gore -> gory, decapitate -> decapitation
Y_SUFFIXES = "es|ed|er|ers|est|ness|ly"  # sexy -> sexier, sexiness


def _skeleton_table() -> MappingProxyType[int, str]:
    """Map each non-ASCII look-alike of an ASCII letter or digit to it (UTS #39 confusables data).

    Two hops through the table, plus Latin small capitals by Unicode name, so "в" -> "ʙ" -> "b".
    """
    data = _load_confusables("confusables.json")

    def ascii_of(glyph: str) -> str | None:
        base = "".join(c for c in unicodedata.normalize("NFD", glyph) if not unicodedata.combining(c))
        base = base.replace("\u200e", "")  # the data wraps right-to-left glyphs in LRMs
        return base.lower() if len(base) == 1 and base.isascii() and base.isalnum() else None

    direct: dict[str, str] = {}
    for key, glyphs in data.items():
        for glyph in (g["c"] for g in glyphs):
            if len(key) == 1 and not key.isascii() and ascii_of(glyph):
                direct.setdefault(key, ascii_of(glyph) or "")
            elif ascii_of(key) and key.isascii() and len(glyph) == 1 and not glyph.isascii():
                direct.setdefault(glyph, ascii_of(key) or "")
    for char in map(chr, range(0x80, 0x2000)):  # Latin/IPA/phonetic blocks hold the small capitals
        small = unicodedata.name(char, "").removeprefix("LATIN LETTER SMALL CAPITAL ")
        if len(small) == 1:
            direct.setdefault(char, small.lower())
    table = dict(direct)
    for key, glyphs in data.items():
        for glyph in (g["c"] for g in glyphs):
            if len(key) == 1 and not key.isascii() and glyph in direct:
                table.setdefault(key, direct[glyph])
    return MappingProxyType({ord(k): v for k, v in table.items()})


SKELETON = _skeleton_table()


class PromptRejected(T2FError):
    """The prompt contains something this server does not allow."""


@dataclass(frozen=True)
class Verdict:
    """What the filter says about one prompt.

    ``reason`` is the matched term or pattern (for moderators; never shown to the user) and ``field``
    is ``"prompt"`` or ``"negative"``; both are ``None`` when the prompt is allowed.
    """

    allowed: bool
    reason: str | None = None
    field: str | None = None
    prompt: str = ""
    negative: str = ""


def safe_echo(text: str, limit: int = 300) -> str:
    """The text made safe to quote back to moderators in Discord or a terminal.

    Bidi controls and zero-width characters are removed (they could reorder the moderator's own
    message), control characters and line breaks become spaces, backticks become a look-alike so
    the prompt cannot close a code block, and the result is cut to ``limit`` characters.
    """
    kept = (" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else "\u02cb" if c == "`" else c for c in text)
    echoed = re.sub(r"\s+", " ", "".join(c for c in kept if unicodedata.category(c) != "Cf")).strip()
    return echoed if len(echoed) <= limit else echoed[: limit - 1] + "…"


def _fold(text: str, symbols: bool = True) -> str:
    """Lower-case a-z letters, UNKNOWN and punctuation (kept so spelled-out words can be joined)."""
    text = "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf")
    # Map look-alikes before and after case folding: "Н" is an "H", "н" a small capital "ʜ".
    text = text.translate(SKELETON).casefold().translate(SKELETON)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.translate(LEET).translate(LEET_SYMBOLS if symbols else {})
    text = FOREIGN.sub(UNKNOWN, text)

    def word(match: re.Match[str]) -> str:
        # An unknown letter is a wildcard only inside a mostly-Latin word; a foreign word is no word.
        latin = sum(c.isascii() and c.isalpha() for c in match[0])
        return match[0] if match[0].count(UNKNOWN) * 2 < latin else " "

    return re.sub(r"[a-z?]+", word, text)


def normalize(text: str) -> str:
    """Fold a prompt into plain lower-case Latin letters, digits mapped, one space between words."""
    return re.sub(r"[^a-z?]+", " ", _fold(text)).strip()


def _variants(text: str) -> list[str]:
    """Every reading of the text to match: as typed and as displayed, symbols as letters or not,
    punctuation inside a word kept as a break or removed ("n.u.d.e" -> "nude")."""
    readings = [text]
    if REVERSED_SPAN.search(text):
        readings.append(REVERSED_SPAN.sub(lambda m: m[1][::-1], text))
    out = []
    for reading in readings:
        for symbols in (True, False):
            folded = _fold(reading, symbols)
            joined = re.sub(r"(?<=[a-z?])[^\sa-z?]+(?=[a-z?])", "", folded)
            out += [re.sub(r"[^a-z?]+", " ", form).strip() for form in (folded, joined)]
    return list(dict.fromkeys(out))


def _letters(word: str, wild: bool, stretch: bool = True) -> str:
    """Regex for a word whose letters may each be repeated ("nnuuddee") or, if wild, unknown."""
    parts = []
    for run in re.finditer(r"(.)\1*", word):
        letter = f"[{run[1]}?]" if wild else run[1]
        count = len(run[0])
        parts.append((f"{letter}+" if count == 1 else f"{letter}{{{count},}}") if stretch else letter * count)
    return "".join(parts)


def _term_regex(spec: str) -> str:
    """Regex (without word boundaries) for one list entry: ``word``, ``=word`` or ``word*``."""
    words = spec.strip("=*").split()
    wild = len("".join(words)) >= MIN_WILDCARD_TERM
    head = "".join(_letters(w, wild) + " " for w in words[:-1])
    last = words[-1]
    if spec.startswith("="):
        return head + _letters(last, wild)
    if spec.endswith("*"):
        return head + _letters(last, wild) + "[a-z?]*"
    forms = [f"{_letters(last, wild)}(?:{SUFFIXES})?"]
    # The stem before a dropped "e" or "y" is not stretched at its end, so "rapping" is not "rape".
    if last.endswith("e") and len(last) > 2:
        forms.append(f"{_letters(last[:-2], wild)}{_letters(last[-2], wild, False)}(?:{E_DROP_SUFFIXES})")
    if last.endswith("y") and len(last) > 2:
        forms.append(f"{_letters(last[:-2], wild)}{_letters(last[-2], wild, False)}i(?:{Y_SUFFIXES})")
    return head + "(?:" + "|".join(forms) + ")"


@dataclass(frozen=True)
class _Matcher:
    """One list compiled: whole-word regex, regex for inside spelled-out runs, and the patterns."""

    terms: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    word: re.Pattern[str] | None = field(init=False)
    inside: re.Pattern[str] | None = field(init=False)

    def __post_init__(self) -> None:
        body = "|".join(f"(?P<t{i}>{_term_regex(t)})" for i, t in enumerate(self.terms))
        object.__setattr__(self, "word", re.compile(f"(?<![a-z?])(?:{body})(?![a-z?])") if body else None)
        object.__setattr__(self, "inside", re.compile(body) if body else None)

    def search(self, text: str) -> str | None:
        if self.word and (hit := self.word.search(text)):
            return self.terms[int(str(hit.lastgroup)[1:])]
        # Runs of two or more one-letter words are read joined up: "a n u d e woman" holds "nude".
        for run in re.findall(r"(?<![a-z?])[a-z?](?: [a-z?])+(?![a-z?])", text):
            if self.inside and (hit := self.inside.search(run.replace(" ", ""))):
                return self.terms[int(str(hit.lastgroup)[1:])]
        return next((p.pattern for p in self.patterns if p.search(text)), None)


def _parse(lines: Iterable[str], *, server: bool = False) -> tuple[tuple[str, ...], tuple[re.Pattern[str], ...]]:
    """Terms (normalised, keeping the ``=`` and ``*`` marks) and ``re:`` patterns of a list file.

    A ``server`` list (a server's own terms, saved by its moderators) drops a pattern
    :func:`~t2f.serve.pattern_check.server_pattern_problem` refuses, with a warning, instead of raising:
    one bad entry saved before that check existed must not stop every ``/face`` on the server.
    """
    terms: list[str] = []
    patterns: list[re.Pattern[str]] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("re:"):
            if server and (problem := server_pattern_problem(line[3:], len(patterns))) is not None:
                log.warning("a server's pattern %r is skipped: %s", line[3:], problem)
                continue
            patterns.append(re.compile(line[3:]))
        elif words := normalize(line.strip("=*")):
            terms.append(("=" if line.startswith("=") else "") + words + ("*" if line.endswith("*") else ""))
    return tuple(dict.fromkeys(terms)), tuple(patterns)


@dataclass(frozen=True)
class PromptFilter:
    """Blocked terms and patterns for prompts, more for negative prompts, and innocent phrases.

    Build it with :meth:`from_file`, :meth:`from_files` or :meth:`from_lines`; it is immutable, and
    :meth:`with_terms` returns a new filter with a server's own terms added.
    """

    terms: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    allowed: tuple[str, ...] = ()
    negative_terms: tuple[str, ...] = ()
    negative_patterns: tuple[re.Pattern[str], ...] = ()
    _main: _Matcher = field(init=False, repr=False, compare=False)
    _negative: _Matcher = field(init=False, repr=False, compare=False)
    _allow: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_main", _Matcher(self.terms, self.patterns))
        # Negated, a few terms ask for less, not more: "nsfw" is the most common safety negative prompt.
        negated = tuple(t for t in dict.fromkeys(self.terms + self.negative_terms) if t not in SAFE_WHEN_NEGATED)
        negative = _Matcher(negated, self.patterns + self.negative_patterns)
        object.__setattr__(self, "_negative", negative)
        phrases = "|".join(re.escape(p) for p in sorted(self.allowed, key=len, reverse=True))
        object.__setattr__(self, "_allow", re.compile(f"(?<![a-z?])(?:{phrases})(?![a-z?])") if phrases else None)

    @classmethod
    def from_lines(cls, lines: Iterable[str], allow: Iterable[str] = (), negative: Iterable[str] = ()) -> PromptFilter:
        """Lines as in ``t2f/serve/data/blocklist.txt``; ``allow`` phrases and ``negative`` terms likewise."""
        terms, patterns = _parse(lines)
        negative_terms, negative_patterns = _parse(negative)
        allowed = tuple(dict.fromkeys(p for p in map(normalize, allow) if p))
        return cls(terms, patterns, allowed, negative_terms, negative_patterns)

    @classmethod
    def from_files(
        cls,
        block: Path | None = DEFAULT_BLOCKLIST,
        allow: Path | None = DEFAULT_ALLOWLIST,
        negative: Path | None = DEFAULT_NEGATIVE_BLOCKLIST,
    ) -> PromptFilter:
        """The three lists from files; ``None`` means an empty list."""
        read = [p.read_text(encoding="utf-8").splitlines() if p else [] for p in (block, allow, negative)]
        return cls.from_lines(*read)

    @classmethod
    def from_file(cls, path: Path | None = None) -> PromptFilter:
        """The blocklist at ``path`` (default: the shipped one) with the shipped allow and negative lists."""
        return cls.from_files(block=path or DEFAULT_BLOCKLIST)

    def with_terms(self, extra: Iterable[str]) -> PromptFilter:
        """This filter plus a server's own terms (same syntax, ``re:`` lines included)."""
        terms, patterns = _parse(extra, server=True)
        if not terms and not patterns:  # the common case (a server with no terms of its own): no recompiling
            return self
        return PromptFilter(
            tuple(dict.fromkeys(self.terms + terms)),
            self.patterns + patterns,
            self.allowed,
            self.negative_terms,
            self.negative_patterns,
        )

    def _hit(self, matcher: _Matcher, text: str) -> str | None:
        for reading in _variants(text):
            if self._allow:
                reading = self._allow.sub(" ", reading)
            if (reason := matcher.search(f" {reading} ")) is not None:
                return reason
        return None

    def judge(self, prompt: str, negative: str = "") -> Verdict:
        """Whether the prompt pair is allowed, and if not, which term and which field."""
        if (reason := self._hit(self._main, prompt)) is not None:
            return Verdict(False, reason, "prompt", prompt, negative)
        if negative and (reason := self._hit(self._negative, negative)) is not None:
            return Verdict(False, reason, "negative", prompt, negative)
        return Verdict(True, None, None, prompt, negative)

    def first_match(self, prompt: str, negative: str = "") -> str | None:
        """The blocked term or pattern the prompt (or else the negative prompt) hits, or ``None``."""
        return self.judge(prompt, negative).reason

    def check(self, prompt: str, negative: str = "") -> None:
        """Return quietly when both prompts pass.

        Raises
        ------
        PromptRejected
            When either hits the filter; the message names the field, never the term.
        """
        if not (verdict := self.judge(prompt, negative)).allowed:
            raise PromptRejected(PROMPT_MESSAGE if verdict.field == "prompt" else NEGATIVE_MESSAGE)


def judge_lines(prompt_filter: PromptFilter, lines: Iterable[str]) -> list[Verdict]:
    """Judge ``prompt<TAB>negative`` lines (the negative part optional); blank and ``#`` lines skipped."""
    verdicts = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        prompt, _, negative = line.rstrip("\r\n").partition("\t")
        verdicts.append(prompt_filter.judge(prompt, negative))
    return verdicts
