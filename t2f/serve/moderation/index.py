"""Where a lexicon's entries occur in one reading of a prompt: hash look-ups, not one regex per term.

Thousands of entries in thirteen languages would make one alternation regex slow (Python's engine
tries every alternative at every position), so a word-script reading is looked up word by word: the
word's squeezed key in a dict of first words (and its first letters in a dict of prefixes), then the
rest of the phrase checked in place. CJK readings are scanned character by character against the
entries that start with that character. Everything here is pure and allocation-light, because it runs
on every prompt on the bot's event loop.
"""

from __future__ import annotations

import itertools
import string
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from t2f.serve.moderation.entries import GAP_WORDS, Entry, Form, Token, squeeze

MIN_WILDCARD_KEY = 4  # shorter words never match an unknown letter ("se?" would hit too much)
MAX_WILDCARDS = 2  # a word with more unknown letters is not guessed at (26 ** 2 look-ups already)
MAX_SPELLED_OUT = 24  # letters of a spelled-out run ("s e x") looked at from each starting letter


@dataclass(frozen=True)
class Hit:
    """An entry found in a reading: word (or character) positions ``start`` to ``end``; -1 when it has none."""

    entry: Entry
    reading: str  # which reading it was found in: proximity is only measured within one
    start: int = -1
    end: int = -1


Word = tuple[str, tuple[int, ...]]  # squeezed key, run counts
Candidate = tuple[Form, Entry, "frozenset[str] | None"]  # a first word's form, its entry, the second word's keys
MAX_CACHED_WORDS = 1 << 16


def _same_letters(form_key: str, key: str, prefix: bool) -> bool:
    """Whether a word's key spells the form's key, "?" standing for any letter."""
    if "?" not in key:
        return key.startswith(form_key) if prefix else key == form_key
    if len(form_key) < MIN_WILDCARD_KEY or len(key) < len(form_key) or (not prefix and len(key) != len(form_key)):
        return False
    return all(c in ("?", f) for c, f in zip(key, form_key, strict=False))  # a prefix: key is longer


def _fits(form: Form, word: Word) -> bool:
    key, counts = word
    if not _same_letters(form.key, key, form.prefix):
        return False
    # Most words are not stretched and most forms take any count: no run to compare then.
    return "?" in key or (form.free and max(counts, default=1) == 1) or form.fits(counts)


def _match_rest(tokens: tuple[Token, ...], t: int, words: list[Word], j: int) -> int | None:
    """Where the entry's tokens from ``t`` on end when matched from word ``j``, or ``None``."""
    if t == len(tokens):
        return j
    if not tokens[t]:  # a gap: up to GAP_WORDS words, then the next token
        for skip in range(GAP_WORDS + 1):
            if j + skip < len(words) and (end := _match_rest(tokens, t + 1, words, j + skip)) is not None:
                return end
        return None
    if j < len(words) and any(_fits(form, words[j]) for form in tokens[t]):
        return _match_rest(tokens, t + 1, words, j + 1)
    return None


class WordIndex:
    """Entries of the languages written with spaces (Latin, Cyrillic), keyed by their first word."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._exact: dict[str, list[Candidate]] = defaultdict(list)
        self._prefix: dict[str, list[Candidate]] = defaultdict(list)
        self._cache: dict[str, list[Candidate]] = {}  # a word's candidates, for the words prompts repeat
        entries_list = list(entries)
        for entry in entries_list:
            # The keys a phrase's second word may have (None: any, when it is a gap or a prefix), so most
            # phrases that start with a common word ("a", "in") are dismissed without matching the rest.
            second: frozenset[str] | None = None
            if len(entry.tokens) > 1 and entry.tokens[1] and not any(form.prefix for form in entry.tokens[1]):
                second = frozenset(form.key for form in entry.tokens[1])
            for form in entry.tokens[0]:
                (self._prefix if form.prefix else self._exact)[form.key].append((form, entry, second))
        self._prefix_lengths = sorted({len(key) for key in self._prefix})
        # One-word entries' keys, for the letters of spelled-out runs: a set look-up per slice.
        self._single_keys = frozenset(form.key for e in entries_list if len(e.tokens) == 1 for form in e.tokens[0])
        self._longest_single = max(map(len, self._single_keys), default=0)

    def _candidates(self, key: str) -> list[Candidate]:
        if (cached := self._cache.get(key)) is not None:
            return cached
        if len(self._cache) >= MAX_CACHED_WORDS:
            self._cache.clear()
        self._cache[key] = found = self._look_up(key)
        return found

    def _look_up(self, key: str) -> list[Candidate]:
        found = list(self._exact.get(key, ()))
        for length in self._prefix_lengths:
            if length > len(key):
                break
            found += self._prefix.get(key[:length], ())
        unknown = key.count("?")
        if 0 < unknown <= MAX_WILDCARDS and len(key) >= MIN_WILDCARD_KEY:  # "n?de": try every letter there
            template = key.replace("?", "{}")
            for letters in itertools.product(string.ascii_lowercase, repeat=unknown):
                found += self._exact.get(template.format(*letters), ())
        return found

    def scan(self, reading: str, name: str) -> list[Hit]:
        """Every entry in ``reading`` (words separated by single spaces)."""
        words = [squeeze(word) for word in reading.split()]
        hits = []
        for i, word in enumerate(words):
            for form, entry, second in self._candidates(word[0]):
                if second is not None and (i + 1 == len(words) or words[i + 1][0] not in second):
                    continue
                if _fits(form, word) and (end := _match_rest(entry.tokens, 1, words, i + 1)) is not None:
                    hits.append(Hit(entry, name, i, end))
        return hits + self._spelled_out(words, name)

    def _spelled_out(self, words: list[Word], name: str) -> list[Hit]:
        """One-word entries inside runs of one-letter words, read joined up: "a n u d e" holds "nude"."""
        hits: list[Hit] = []
        i = 0
        while i < len(words):
            j = i
            while j < len(words) and len(words[j][0]) == 1:
                j += 1
            if j - i >= 2:
                letters = "".join(key * sum(counts) for key, counts in words[i:j])
                key, counts = squeeze(letters)
                longest = min(MAX_SPELLED_OUT, self._longest_single)
                for a in range(len(key)):
                    for b in range(a + 2, min(len(key), a + longest) + 1):
                        if key[a:b] not in self._single_keys:
                            continue
                        part = (key[a:b], counts[a:b])
                        found = self._exact.get(part[0], []) + self._prefix.get(part[0], [])
                        hits += [Hit(e, name, i, j) for form, e, _ in found if len(e.tokens) == 1 and _fits(form, part)]
            i = max(j, i + 1)
        return hits


def _script(char: str) -> str:
    """The script a CJK-reading character belongs to, for ``<`` and ``>`` boundaries."""
    code = ord(char)
    if 0x3040 <= code < 0x30A0:
        return "hiragana"
    if 0x30A0 <= code < 0x3100:
        return "katakana"
    if 0x1100 <= code < 0x1200 or 0x3130 <= code < 0x3190 or 0xAC00 <= code < 0xD7B0:
        return "hangul"
    if char.isascii():
        return "latin" if char.isalnum() else "space"
    return "han"


class SubstringIndex:
    """Entries of the languages written without spaces (Chinese, Japanese, Korean), by first character."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._by_first: dict[str, list[Entry]] = defaultdict(list)
        for entry in entries:
            self._by_first[entry.substring[0]].append(entry)

    def scan(self, reading: str, name: str) -> list[Hit]:
        hits = []
        for i, char in enumerate(reading):
            for entry in self._by_first.get(char, ()):
                end = i + len(entry.substring)
                if not reading.startswith(entry.substring, i):
                    continue
                before, after = entry.bounded
                if before and i > 0 and _script(reading[i - 1]) == _script(char):
                    continue
                if after and end < len(reading) and _script(reading[end]) == _script(reading[end - 1]):
                    continue
                hits.append(Hit(entry, name, i, end))
        return hits
