"""Words a server's moderators (``/faceadmin blockword``) or the operator (``T2F_BLOCKLIST_FILE``) add.

They are few, written by people, and may be ``re:`` patterns, so they compile into one regex per list
(the shipped lexicons use hash look-ups instead: ``t2f.serve.moderation.index``). Syntax, as in the
lexicons' English files: ``word`` (with its regular endings: nude -> nudes, nudity), ``=word`` (only the
word), ``word*`` (any word starting with it), ``two words``, ``re:<regex>`` searched in the folded prompt
(lower-case a-z words separated by single spaces). Matching sees through the same disguises as the
lexicons (``t2f.serve.moderation.fold``) and never matches inside another word.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from t2f.serve.moderation.entries import E_DROP_SUFFIXES, SUFFIXES, Y_SUFFIXES
from t2f.serve.moderation.fold import latin_readings, normalize
from t2f.serve.pattern_check import server_pattern_problem

log = logging.getLogger(__name__)
MIN_WILDCARD_TERM = 4  # shorter terms never match an unknown letter ("se?" would hit too much)


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
    forms = [f"{_letters(last, wild)}(?:{'|'.join(SUFFIXES)})?"]
    # The stem before a dropped "e" or "y" is not stretched at its end, so "rapping" is not "rape".
    if last.endswith("e") and len(last) > 2:
        drop = "|".join(E_DROP_SUFFIXES)
        forms.append(f"{_letters(last[:-2], wild)}{_letters(last[-2], wild, False)}(?:{drop})")
    if last.endswith("y") and len(last) > 2:
        drop = "|".join(Y_SUFFIXES)
        forms.append(f"{_letters(last[:-2], wild)}{_letters(last[-2], wild, False)}i(?:{drop})")
    return head + "(?:" + "|".join(forms) + ")"


@dataclass(frozen=True)
class Matcher:
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
        """The term or pattern found in one reading (padded with spaces), or ``None``."""
        if self.word and (hit := self.word.search(text)):
            return self.terms[int(str(hit.lastgroup)[1:])]
        # Runs of two or more one-letter words are read joined up: "a n u d e woman" holds "nude".
        for run in re.findall(r"(?<![a-z?])[a-z?](?: [a-z?])+(?![a-z?])", text):
            if self.inside and (hit := self.inside.search(run.replace(" ", ""))):
                return self.terms[int(str(hit.lastgroup)[1:])]
        return next((p.pattern for p in self.patterns if p.search(text)), None)


def parse(lines: Iterable[str], *, server: bool = False) -> tuple[tuple[str, ...], tuple[re.Pattern[str], ...]]:
    """Terms (normalised, keeping the ``=`` and ``*`` marks) and ``re:`` patterns of a list.

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
class ListedTerms:
    """Blocked terms and patterns (more for negative prompts), and innocent phrases removed first."""

    terms: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    allowed: tuple[str, ...] = ()
    negative_terms: tuple[str, ...] = ()
    negative_patterns: tuple[re.Pattern[str], ...] = ()
    _main: Matcher = field(init=False, repr=False, compare=False)
    _negative: Matcher = field(init=False, repr=False, compare=False)
    _allow: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_main", Matcher(self.terms, self.patterns))
        # Negated, "nsfw" asks for less, not more: it is the most common safety negative prompt.
        negated = tuple(t for t in dict.fromkeys(self.terms + self.negative_terms) if t not in ("=nsfw", "nsfw"))
        object.__setattr__(self, "_negative", Matcher(negated, self.patterns + self.negative_patterns))
        phrases = "|".join(re.escape(p) for p in sorted(self.allowed, key=len, reverse=True))
        object.__setattr__(self, "_allow", re.compile(f"(?<![a-z?])(?:{phrases})(?![a-z?])") if phrases else None)

    @property
    def empty(self) -> bool:
        return not (self.terms or self.patterns or self.negative_terms or self.negative_patterns)

    def plus(self, lines: Iterable[str], *, server: bool = False, allow: Iterable[str] = ()) -> ListedTerms:
        """These terms plus ``lines`` (same syntax) and ``allow`` phrases; ``server`` as in :func:`parse`."""
        terms, patterns = parse(lines, server=server)
        allowed = tuple(p for p in map(normalize, (a for a in allow if not a.lstrip().startswith("#"))) if p)
        return ListedTerms(
            tuple(dict.fromkeys(self.terms + terms)),
            self.patterns + patterns,
            tuple(dict.fromkeys(self.allowed + allowed)),
            self.negative_terms,
            self.negative_patterns,
        )

    def search(self, text: str, *, negative: bool = False) -> str | None:
        """The term or pattern ``text`` holds in any of its readings, or ``None``."""
        matcher = self._negative if negative else self._main
        if matcher.word is None and not matcher.patterns:
            return None
        for reading in latin_readings(text):
            if self._allow:
                reading = self._allow.sub(" ", reading)
            if (reason := matcher.search(f" {reading} ")) is not None:
                return reason
        return None
