"""Readings of a prompt that the lexicons are matched against, each folded so disguises fall away.

A prompt is read several ways, because each script needs its own:

- **Latin** (:func:`latin_readings`): NFKC, format characters (bidi controls, zero-width) dropped,
  Unicode look-alikes mapped to Latin by the UTS #39 confusables table (package
  ``confusable-homoglyphs``), accents removed, case folded, leetspeak mapped; punctuation inside a word
  kept as a break or removed ("n.u.d.e"); text after a right-to-left override also read reversed, as it
  is displayed. Words of lower-case a-z, with ``?`` for a letter of another script inside a mostly-Latin
  word ("nμde"): it may stand for any letter.
- **Cyrillic** (:func:`cyrillic_readings`): the same folding, but Latin look-alikes inside a Cyrillic word
  become Cyrillic ("гoлая" with a Latin o) and digits their Cyrillic twins ("3" is "з").
- **CJK** (:func:`cjk_readings`): Chinese, Japanese and Korean have no spaces between words, so they are
  matched as substrings of one compact string: NFKC (half-width katakana become full-width), traditional
  Chinese characters mapped to simplified (one lexicon serves both), spaces and punctuation dropped
  ("裸 体" is "裸体").
- **Plain** (:func:`plain_reading`): folded like Latin but keeping digits and every script, for the few
  patterns that need numbers ("12 year old", "12歳").
- **Emoji** (:func:`emoji_in`): the set of pictographs, for emoji codes ("🍆💦").
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable
from types import MappingProxyType

from confusable_homoglyphs.utils import load as _load_confusables

# Overrides and embeddings (RLO, RLE) display the Latin letters after them right to left, up to the
# closing PDF/PDI or the end: "\u202enamow edun" reads "nude woman" on screen.
REVERSED_SPAN = re.compile("[\u202e\u202b]([^\u202c\u2069]*)")
LEET = MappingProxyType(str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g"}))
LEET_SYMBOLS = MappingProxyType(str.maketrans({"@": "a", "$": "s", "!": "i", "|": "l", "€": "e"}))
# Latin letters that neither NFKD nor the confusables table bring to a-z (Polish, Nordic, Turkish, French).
LATIN_EXTRA = MappingProxyType(
    str.maketrans({"ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ı": "i", "đ": "d", "ð": "d", "þ": "th", "ħ": "h"})
)
FOREIGN = re.compile(r"[^\W\d_a-z]")  # letters outside a-z that survived folding
UNKNOWN = "?"  # such a letter inside a mostly-Latin word ("nμde"): it may stand for any letter
CYRILLIC = re.compile("[\u0400-\u04ff]")
# Latin letters and digits that look like Cyrillic ones, inside a Cyrillic word ("гoлая", "3вер").
CYRILLIC_TWINS = MappingProxyType(
    str.maketrans(
        {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "y": "у", "x": "х", "k": "к", "m": "м", "t": "т"}
        | {"h": "н", "b": "в", "u": "и", "n": "п", "r": "г", "3": "з", "0": "о", "6": "б", "4": "ч", "@": "а"}
    )
)
CJK = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff卍卐]")
CJK_KEPT = re.compile("[^\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af卍卐a-z0-9]+")
# Traditional characters of the lexicons' words, to simplified: one Chinese list serves both scripts.
# Japanese kanji that share a traditional form are mapped too, on both sides, so nothing is lost.
TRADITIONAL = "體殺屍沒脫頭斬腸臟內納黨殘絲掛愛陰莖騷蘿學兒戰預熱線師圖塊塗類輕尋藥樓媽幹極裝誘褲溝護穿帶髮錶"
SIMPLIFIED = "体杀尸没脱头斩肠脏内纳党残丝挂爱阴茎骚萝学儿战预热线师图块涂类轻寻药楼妈干极装诱裤沟护穿带发表"
TO_SIMPLIFIED = MappingProxyType(str.maketrans(TRADITIONAL, SIMPLIFIED))
# Emoji: presentation selectors, skin tones and joiners say nothing about what a pictograph means.
EMOJI_NOISE = re.compile("[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff]")


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


def _dropping(keep: Callable[[str], bool]) -> MappingProxyType[int, None]:
    """A translate table deleting every character ``keep`` refuses, of the first two planes and the tags."""
    codes = itertools.chain(range(0x20000), range(0xE0000, 0xE0080))
    return MappingProxyType({code: None for code in codes if not keep(chr(code))})


# Format characters (bidi controls, zero-width, soft hyphens) and combining marks, as translate tables:
# one C-level pass instead of a Python test per character.
FORMAT = _dropping(lambda c: unicodedata.category(c) != "Cf")
COMBINING = _dropping(lambda c: not unicodedata.combining(c))
LITERAL_QUESTION = re.compile(r"\?(?![a-z])")  # "nude?" ends a question; "s?x" hides a letter


def visible(text: str) -> str:
    """NFKC with format characters (bidi controls, zero-width, soft hyphens) removed."""
    return unicodedata.normalize("NFKC", text).translate(FORMAT)


def unaccented(text: str) -> str:
    """Combining marks removed (after NFKD): "nüde" -> "nude", "ё" -> "е"."""
    return unicodedata.normalize("NFKD", text).translate(COMBINING)


def _unleeted(text: str) -> str:
    """Case-folded a-z (look-alikes, accents, digits mapped) before the symbols are read as letters."""
    # Map look-alikes before and after case folding: "Н" is an "H", "н" a small capital "ʜ".
    text = visible(text).translate(SKELETON).casefold().translate(SKELETON)
    return LITERAL_QUESTION.sub(" ", unaccented(text).translate(LATIN_EXTRA).translate(LEET))


def _letters_only(text: str) -> str:
    """Letters outside a-z become UNKNOWN inside a mostly-Latin word; a foreign word is no word."""
    text = FOREIGN.sub(UNKNOWN, text)
    if UNKNOWN not in text:
        return text

    def word(match: re.Match[str]) -> str:
        latin = sum(c.isascii() and c.isalpha() for c in match[0])
        return match[0] if match[0].count(UNKNOWN) * 2 < latin else " "

    return re.sub(r"[a-z?]+", word, text)


def fold(text: str, symbols: bool = True) -> str:
    """Lower-case a-z letters, UNKNOWN and punctuation (kept so spelled-out words can be joined)."""
    text = _unleeted(text)
    return _letters_only(text.translate(LEET_SYMBOLS) if symbols else text)


def normalize(text: str) -> str:
    """Fold a prompt into plain lower-case Latin letters, digits mapped, one space between words."""
    return re.sub(r"[^a-z?]+", " ", fold(text)).strip()


def _displayed(text: str) -> list[str]:
    """The text as typed, and as displayed when a right-to-left override reverses part of it."""
    readings = [text]
    if REVERSED_SPAN.search(text):
        readings.append(REVERSED_SPAN.sub(lambda m: m[1][::-1], text))
    return readings


def latin_readings(text: str) -> list[str]:
    """Every Latin reading to match: as typed and as displayed, symbols as letters or not, punctuation
    inside a word kept as a break or removed ("n.u.d.e" -> "nude")."""
    out = []
    for reading in _displayed(text):
        unleeted = _unleeted(reading)
        for folded in dict.fromkeys([_letters_only(unleeted.translate(LEET_SYMBOLS)), _letters_only(unleeted)]):
            joined = re.sub(r"(?<=[a-z?])[^\sa-z?]+(?=[a-z?])", "", folded)
            out += [re.sub(r"[^a-z?]+", " ", form).strip() for form in (folded, joined)]
    return list(dict.fromkeys(out))


def cyrillic_fold(text: str) -> str:
    """Lower-case Cyrillic words separated by single spaces; Latin look-alikes inside them made Cyrillic."""
    text = unicodedata.normalize("NFC", visible(text).casefold().replace("ё", "е").replace("й", "\0"))
    text = unaccented(text).replace("\0", "й")  # "й" is a letter of its own, not an accented "и"

    def word(match: re.Match[str]) -> str:
        return match[0].translate(CYRILLIC_TWINS) if CYRILLIC.search(match[0]) else " "

    return re.sub(r"[\w@]+", word, text)


def cyrillic_readings(text: str) -> list[str]:
    """Cyrillic readings (punctuation inside a word as a break, or removed), or none without Cyrillic."""
    if not CYRILLIC.search(text):
        return []
    out = []
    for reading in _displayed(text):
        folded = cyrillic_fold(reading)
        joined = re.sub(r"(?<=[\u0400-\u04ff])[^\s\u0400-\u04ff]+(?=[\u0400-\u04ff])", "", folded)
        out += [re.sub(r"[^\u0400-\u04ff]+", " ", form).strip() for form in (folded, joined)]
    return list(dict.fromkeys(out))


def cjk_fold(text: str) -> str:
    """Han, kana, Hangul (and a-z, 0-9 between them) as one string without spaces or punctuation."""
    return CJK_KEPT.sub("", visible(text).casefold().translate(TO_SIMPLIFIED))


def cjk_readings(text: str) -> tuple[str, str]:
    """The compact CJK reading, and the same with one space where anything else stood (for entries that
    must not touch a letter of their script: "ロリ" apart from "カロリー"); ("", "") without CJK."""
    if not CJK.search(text):
        return "", ""
    spaced = CJK_KEPT.sub(" ", visible(text).casefold().translate(TO_SIMPLIFIED)).strip()
    return spaced.replace(" ", ""), spaced


def plain_reading(text: str) -> str:
    """Case-folded, unaccented, every script and digit kept, other characters as single spaces."""
    folded = unicodedata.normalize("NFC", unaccented(visible(text).casefold()))  # NFC: Hangul recomposed
    return re.sub(r"[\W_]+", " ", folded.translate(LATIN_EXTRA)).strip()


def emoji_in(text: str) -> frozenset[str]:
    """The pictographs of the text (symbols of category So), without selectors, skin tones or joiners."""
    return frozenset(c for c in EMOJI_NOISE.sub("", text) if unicodedata.category(c) == "So")
