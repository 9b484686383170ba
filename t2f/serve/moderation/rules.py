"""What the entries found in a prompt and its negative prompt mean together: the combination rules.

- A category's own words refuse alone (sexual, violence, self-harm, hate, and the names of genres that
  sexualise minors), unless an allow-list phrase of any language covers them ("blood orange").
- Nudity said without a nudity word: a word of absence just before a garment ("without any clothes",
  "sin ropa"), a word of removal just after one ("clothes off"), a word of exposure beside a body part
  ("showing her breasts"). In CJK readings, within a few characters on either side.
- A word for a child, a school age or a young look anywhere in the prompt, beside anything sexual or
  suggestive, is a minor in a sexual context: its own category, the strictest, whatever the server allows.
- Suggestive words alone (seductive, lingerie, bikini) refuse only on a server that chose so.
- The negative prompt pushes the picture away from its words, so it is read for what removing them asks
  for: clothing there undresses (and undresses a child when the prompt names one); "adult" there, beside
  a sexual or suggestive prompt, asks for a younger look. Violence, self-harm and hate words in a
  negative prompt ask for less of them and pass; sexual words there are refused as before (except
  "nsfw", the most common safety negative).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from t2f.serve.moderation.index import Hit
from t2f.serve.moderation.lexicon import LANGUAGES, Scan

WINDOW_WORDS = 3  # words allowed between "without" and "clothes", or "showing" and "breasts"
WINDOW_CHARS = 6  # the same in CJK readings, in characters, on either side
SAFE_WHEN_NEGATED = frozenset({"nsfw", "=nsfw"})


class Category(StrEnum):
    """Why a prompt is refused, most severe first."""

    MINORS = "minors"
    SEXUAL = "sexual"
    VIOLENCE = "violence"
    SELF_HARM = "self-harm"
    HATE = "hate"
    SUGGESTIVE = "suggestive"
    LISTED = "listed"  # a word of the server's own list, or of the operator's T2F_BLOCKLIST_FILE

    @property
    def described(self) -> str:
        """The category in words, for moderators."""
        return DESCRIBED[self]


DESCRIBED = {
    Category.MINORS: "a minor in a sexual context",
    Category.SEXUAL: "sexual content",
    Category.VIOLENCE: "gore or violence",
    Category.SELF_HARM: "self-harm",
    Category.HATE: "a hate symbol",
    Category.SUGGESTIVE: "suggestive content",
    Category.LISTED: "a word on this server's or the bot's own list",
}
SEVERITY = tuple(Category)


@dataclass(frozen=True)
class Finding:
    """Something a prompt asks for: its category, the lexicon's language, the entry (or entries) and field."""

    category: Category
    language: str  # "" for a server's or the operator's own word
    term: str
    field: str  # "prompt" or "negative"


def _reads_as(language: str, languages: Mapping[str, int]) -> bool:
    """Whether the prompt's common words point to ``language`` (at least one, and no language more)."""
    return languages.get(language, 0) > 0 and languages[language] == max(languages.values())


def _kept(scan: Scan) -> dict[str, list[Hit]]:
    """Hits by role, without: the allow-list's hits and any hit inside one of their spans; gated entries of
    a language the prompt does not read as; and an entry's hits in a later reading of a script when its
    first reading (as typed) has the entry too, so "кроваво-красный" joined up does not escape the
    allow-list phrase "кроваво красн*" that its first reading honours."""
    hits = [h for h in scan.hits if not h.entry.gated or _reads_as(h.entry.language, scan.languages)]
    spans = [(h.reading, h.start, h.end) for h in hits if h.entry.role == "allow"]
    in_first = {(_family(h.reading), id(h.entry)) for h in hits if h.reading[-1:] == "0"}
    by_role: dict[str, list[Hit]] = defaultdict(list)
    for hit in hits:
        covered = hit.start >= 0 and any(r == hit.reading and s <= hit.start and hit.end <= e for r, s, e in spans)
        later = hit.reading[-1:] != "0" and (_family(hit.reading), id(hit.entry)) in in_first
        if hit.entry.role != "allow" and not covered and not later:
            by_role[hit.entry.role].append(hit)
    return by_role


def _family(reading: str) -> str:
    """ "latin" for "latin2": the readings of one script are numbered, the first as typed."""
    return reading.rstrip("0123456789")


def _near(first: Hit, second: Hit) -> bool:
    """Whether the two are a few words apart, on either side, both of one language ("ropa de los" is
    Spanish, not a garment and German "los"). CJK readings have no words: a few characters."""
    if first.reading != second.reading or first.start < 0 or second.start < 0:
        return False
    if first.entry.language != second.entry.language:
        return False
    if first.reading.startswith("cjk"):
        return first.start - WINDOW_CHARS <= second.end and second.start <= first.end + WINDOW_CHARS
    return 0 <= second.start - first.end <= WINDOW_WORDS or 0 <= first.start - second.end <= WINDOW_WORDS


def _pair(hits: Mapping[str, list[Hit]], a: str, b: str) -> list[tuple[Hit, Hit]]:
    return [(x, y) for x in hits.get(a, ()) for y in hits.get(b, ()) if _near(x, y)]


def prompt_findings(scan: Scan) -> tuple[list[Finding], list[Hit]]:
    """What the prompt asks for, and its words for a minor (which refuse only beside something else)."""
    hits = _kept(scan)
    found = [Finding(Category(h.entry.kind), h.entry.language, h.entry.text, "prompt") for h in hits.get("term", ())]
    pairs = _pair(hits, "exposure", "part") + _pair(hits, "absence", "garment")
    pairs += [(garment, removed) for removed, garment in _pair(hits, "removed", "garment")]
    for first, second in pairs:
        if first.reading.startswith("cjk") or _ordered_right(first, second):
            both = f"{first.entry.text} + {second.entry.text}"
            found.append(Finding(Category.SEXUAL, second.entry.language, both, "prompt"))
    return found, hits.get("young", [])


def _ordered_right(first: Hit, second: Hit) -> bool:
    """Absence words come before the garment, removal words after it ("clothes off"); exposure either side
    of the part. (CJK readings take either order: Japanese and Korean put the verb after.)"""
    if first.entry.role == "absence":
        return first.end <= second.start
    if second.entry.role == "removed":
        return first.end <= second.start
    return True


def negative_findings(scan: Scan, prompt: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """What removing the negative prompt's words asks for (see the module's docstring), and of that the
    clothing it removes (which undresses a child when the prompt names one)."""
    hits = _kept(scan)
    undressing = [
        Finding(Category.SEXUAL, hit.entry.language, hit.entry.text, "negative")
        for hit in hits.get("clothing", []) + hits.get("garment", [])
    ]
    found = list(undressing)
    for hit in hits.get("term", []):
        if hit.entry.kind == "sexual" and hit.entry.text not in SAFE_WHEN_NEGATED:
            found.append(Finding(Category.SEXUAL, hit.entry.language, hit.entry.text, "negative"))
    if any(f.category in (Category.SEXUAL, Category.SUGGESTIVE) for f in prompt):
        found += [Finding(Category.MINORS, h.entry.language, h.entry.text, "negative") for h in hits.get("adult", [])]
    return found, undressing


def with_minors(found: list[Finding], young: list[Hit], undressing: list[Finding]) -> list[Finding]:
    """``found`` plus a minors finding for each young word beside something sexual or suggestive in the
    prompt, or beside clothing removed by the negative prompt (``undressing``). A sexual word in the
    negative prompt does not count: "a child" with the negative "nsfw, nude" is a careful parent."""
    sexual = [f for f in found if f.category in (Category.SEXUAL, Category.SUGGESTIVE) and f.field == "prompt"]
    extra = []
    for hit in young:
        for other in sexual + undressing:
            extra.append(Finding(Category.MINORS, hit.entry.language, f"{hit.entry.text} + {other.term}", other.field))
    return found + extra


def most_severe(found: Iterable[Finding], languages: Mapping[str, int], refused: frozenset[Category]) -> Finding | None:
    """The finding to report: the most severe of the ``refused`` categories, the prompt's before the
    negative prompt's, in the language the prompt's common words point to when several share the word
    (then the longest entry, then the first language)."""

    def rank(finding: Finding) -> tuple[int, bool, int, int, int]:
        order = LANGUAGES.index(finding.language) if finding.language in LANGUAGES else len(LANGUAGES)
        severity = SEVERITY.index(finding.category)
        # Among equals, the longer entry is the more specific one: "porno*" over "porn*".
        return severity, finding.field != "prompt", -languages.get(finding.language, 0), -len(finding.term), order

    return min((f for f in found if f.category in refused), key=rank, default=None)
