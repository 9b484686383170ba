"""One line of a lexicon file, parsed: the spellings it stands for, token by token.

Syntax (``data/README.md`` has it for moderators):

- ``word`` a word; in English also with its regular endings (nude: nudes, nudity; gore: gory; sexy:
  sexier); in the other languages exactly, so inflections are spelled out with braces:
  ``nackt{,e,en,er,es}`` is nackt, nackte, nackten, nackter, nacktes. Braces may appear anywhere and
  several times: ``{ohne,keine} kleidung``.
- ``word*`` any word starting with these letters; ``=word`` exactly that word: no English endings and
  no letter stretched ("=pene" leaves the pasta "penne" alone).
- ``two words`` a phrase, word after word; ``~`` between two words allows up to three others between
  them: ``cuts ~ wrists`` is "cuts on her wrists".
- ``^`` before a line: the entry counts only when the prompt reads as its language (more of its
  common words than of any other language's): French "^pipe" and "^bite" leave English prompts alone.
- ``re:<regex>`` a Python regular expression searched in the plain reading (digits kept, every script):
  for ages, "12 year old", "12歳".
- In Chinese, Japanese and Korean a line is a substring; ``<`` before it or ``>`` after it asks that no
  letter of the same script touches it there (``<ロリ>`` spares "カロリー").
- In the emoji file, pictographs separated by spaces must all appear, anywhere: ``🍆 💦``.

A word's letters may each be repeated in a prompt ("nnuuddee"), so a spelling is kept as its
*squeezed key* (runs of a letter made one) and the least (and, where it matters, the most) count of
each run.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import NamedTuple

from t2f.errors import T2FError

GAP = "~"
GAP_WORDS = 3  # "~" skips up to this many words
BRACES = re.compile(r"\{([^{}]*)\}")
DOUBLED = re.compile(r"(.)\1")
RUNS = re.compile(r"(.)\1*")
# English regular endings a plain word also matches with ("nude" -> "nudes", "nudity"; "kill" -> "killing").
# No "er"/"ist": "killer whale" and "sexist" are not what the list means.
SUFFIXES = ("s", "es", "d", "ed", "ing", "y", "ity", "ities", "ness", "ion", "ions", "ment", "ments", "ly")
E_DROP_SUFFIXES = ("ing", "y", "ity", "ities", "ion", "ions")  # nude -> nudity, gore -> gory
Y_SUFFIXES = ("es", "ed", "er", "ers", "est", "ness", "ly")  # sexy -> sexier, sexiness
UNBOUNDED = 0


class LexiconError(T2FError):
    """A lexicon line t2f cannot read (unbalanced braces, a regex that does not compile, …)."""


class Form(NamedTuple):
    """One spelling of a word: its squeezed key, the count bounds of each run, whether it is a prefix,
    and whether any unstretched word fits it (every run takes one letter or more). A tuple: tens of
    thousands are made at start-up."""

    key: str
    runs: tuple[tuple[int, int], ...]  # (least, most) letters in each run; most UNBOUNDED: any
    prefix: bool = False
    free: bool = True

    def fits(self, counts: tuple[int, ...]) -> bool:
        """Whether a word with these run counts (same key, or longer for a prefix) is this spelling."""
        pairs = zip(self.runs, counts, strict=False)  # a prefix's word has more runs than its form
        return all(low <= n and (high == UNBOUNDED or n <= high) for (low, high), n in pairs)


Token = tuple[Form, ...]  # the spellings one word of an entry may take; () is a gap


@dataclass(frozen=True)
class Entry:
    """A parsed lexicon line: language, the file's kind, the section's role, and what it matches."""

    language: str
    kind: str
    role: str
    text: str  # the spelling as written, braces expanded (the reason moderators see and can look up)
    tokens: tuple[Token, ...] = ()  # word scripts
    substring: str = ""  # CJK
    bounded: tuple[bool, bool] = (False, False)  # CJK: no same-script letter before / after
    emoji: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None
    gated: bool = False  # counts only when the prompt reads as this language ("^" in the file)


@functools.lru_cache(maxsize=1 << 16)  # prompts share most of their words
def squeeze(word: str) -> tuple[str, tuple[int, ...]]:
    """A word's key (each run of a letter made one) and the length of each run: "nnude" -> ("nude", (2,1,1,1))."""
    if not DOUBLED.search(word):
        return word, (1,) * len(word)
    runs = [run[0] for run in RUNS.finditer(word)]
    return "".join(run[0] for run in runs), tuple(len(run) for run in runs)


def expand_braces(line: str) -> list[str]:
    """Every spelling a line with ``{a,b}`` groups stands for, in order."""
    if line.count("{") != line.count("}"):
        raise LexiconError(f"unbalanced braces in {line!r}")
    parts = BRACES.split(line)  # text, options, text, options, …
    choices = [[part] if index % 2 == 0 else part.split(",") for index, part in enumerate(parts)]
    return ["".join(chosen) for chosen in itertools.product(*choices)]


def _form(word: str, *, prefix: bool = False, exact_end: int = -1, exact: bool = False) -> Form:
    """The form of ``word``; the run holding letter ``exact_end`` (every run, if ``exact``) may not be
    stretched ("rap" in "raping")."""
    key, counts = squeeze(word)
    if not exact and exact_end < 0:
        return Form(key, tuple((count, UNBOUNDED) for count in counts), prefix, max(counts, default=1) == 1)
    runs, position = [], 0
    for count in counts:
        fixed = exact or position <= exact_end < position + count
        runs.append((count, count if fixed else UNBOUNDED))
        position += count
    return Form(key, tuple(runs), prefix, all(low == 1 for low, _ in runs))


def english_forms(word: str) -> Token:
    """A word and its regular English endings; before a dropped "e" or "y" the stem's end is not stretched,
    so "rapping" is not "rape"."""
    forms = [_form(word)] + [_form(word + ending) for ending in SUFFIXES]
    if word.endswith("e") and len(word) > 2:
        forms += [_form(word[:-1] + ending, exact_end=len(word) - 2) for ending in E_DROP_SUFFIXES]
    if word.endswith("y") and len(word) > 2:
        forms += [_form(word[:-1] + "i" + ending, exact_end=len(word) - 2) for ending in Y_SUFFIXES]
    return tuple(dict.fromkeys(forms))


def word_tokens(spelling: str, fold: Callable[[str], str], *, endings: bool) -> tuple[Token, ...]:
    """The tokens of one spelling of a word-script line (after brace expansion)."""
    exact = spelling.startswith("=")
    tokens: list[Token] = []
    raw_tokens = spelling.removeprefix("=").split()
    for index, raw in enumerate(raw_tokens):
        if raw == GAP:
            if not tokens or index == len(raw_tokens) - 1 or raw_tokens[index + 1] == GAP:
                raise LexiconError(f"a {GAP} must stand between two words in {spelling!r}")
            tokens.append(())
            continue
        words = fold(raw.rstrip("*")).split()
        for position, word in enumerate(words):
            last_of_raw = position == len(words) - 1
            if last_of_raw and raw.endswith("*"):
                tokens.append((_form(word, prefix=True),))
            elif endings and not exact and last_of_raw and index == len(raw_tokens) - 1:
                tokens.append(english_forms(word))
            else:
                tokens.append((_form(word, exact=exact),))
    return tuple(tokens)


def parse_line(
    line: str, *, language: str, kind: str, role: str, script: str, fold: Callable[[str], str], endings: bool
) -> Iterator[Entry]:
    """The entries of one lexicon line (one per brace spelling); nothing for a blank or comment line."""
    line = re.sub(r"\s+#.*$", "", line).strip()
    if not line or line.startswith("#"):
        return
    gated = line.startswith("^")
    line = line.removeprefix("^")
    base = Entry(language, kind, role, line, gated=gated)
    if line.startswith("re:"):
        try:
            yield replace(base, pattern=re.compile(line[3:]))
        except re.error as exc:
            raise LexiconError(f"{line!r} is not a regular expression Python can read ({exc})") from None
        return
    for spelling in expand_braces(line):
        base = replace(base, text=spelling.lstrip("=<").rstrip(">"))
        if script == "emoji":
            yield replace(base, emoji=frozenset(fold(spelling).split()))
        elif script == "cjk":
            bounded = (spelling.startswith("<"), spelling.endswith(">"))
            if substring := fold(spelling.strip("<>")):
                yield replace(base, substring=substring, bounded=bounded)
        elif tokens := word_tokens(spelling, fold, endings=endings):
            yield replace(base, tokens=tokens)
