"""The prompt filter: the shipped lexicons and rules, plus the operator's and each server's own words."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from t2f.errors import T2FError
from t2f.serve.moderation.lexicon import Lexicon
from t2f.serve.moderation.listed import ListedTerms
from t2f.serve.moderation.rules import (
    Category,
    Finding,
    most_severe,
    negative_findings,
    prompt_findings,
    with_minors,
)

PROMPT_MESSAGE = "Your prompt contains words this server does not allow. Please rephrase it."
NEGATIVE_MESSAGE = "Your negative prompt contains words this server does not allow. Please rephrase it."
ALWAYS_REFUSED = frozenset(Category) - {Category.SUGGESTIVE}


@dataclass(frozen=True)
class Verdict:
    """What the filter says about one prompt pair.

    Refused: ``category`` says why, ``language`` which lexicon matched ("" for a listed word), ``reason``
    the entry (or the entries a rule combined: "without + clothes") and ``field`` ``"prompt"`` or
    ``"negative"``. These are for moderators and logs; the member only learns which field. Allowed:
    ``category`` is ``SUGGESTIVE`` when suggestive words were seen (the server allows them), else ``None``.
    """

    allowed: bool
    reason: str | None = None
    field: str | None = None
    prompt: str = ""
    negative: str = ""
    category: Category | None = None
    language: str | None = None


class PromptRejected(T2FError):
    """The prompt contains something this server does not allow; ``verdict`` says what, for moderators."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(PROMPT_MESSAGE if verdict.field == "prompt" else NEGATIVE_MESSAGE)
        self.verdict = verdict


@dataclass(frozen=True)
class PromptFilter:
    """The lexicons (``None``: none, for a bare list) and listed words; immutable.

    Build it with :meth:`from_file` (the shipped lexicons, and the operator's list) or :meth:`from_lines`
    (listed words alone); :meth:`with_terms` adds a server's own words.
    """

    lexicon: Lexicon | None = None
    listed: ListedTerms = field(default_factory=ListedTerms)

    @classmethod
    def from_file(cls, path: Path | None = None) -> PromptFilter:
        """The shipped lexicons, plus the words of the list at ``path`` (``T2F_BLOCKLIST_FILE``) if given."""
        lines = path.read_text(encoding="utf-8").splitlines() if path else []
        return cls(Lexicon.load(), ListedTerms().plus(lines))

    @classmethod
    def from_lines(cls, lines: Iterable[str], allow: Iterable[str] = (), negative: Iterable[str] = ()) -> PromptFilter:
        """Listed words alone (no lexicon): ``lines`` for both fields, ``negative`` for negative prompts only."""
        listed = ListedTerms().plus(lines, allow=allow)
        extra = ListedTerms().plus(negative)
        return cls(None, ListedTerms(listed.terms, listed.patterns, listed.allowed, extra.terms, extra.patterns))

    @property
    def terms(self) -> tuple[str, ...]:
        """The listed words, normalised (the lexicons' are in their files)."""
        return self.listed.terms

    def with_terms(self, extra: Iterable[str]) -> PromptFilter:
        """This filter plus a server's own words (same syntax, ``re:`` lines included)."""
        listed = self.listed.plus(extra, server=True)
        return self if listed == self.listed else PromptFilter(self.lexicon, listed)

    def with_allowed(self, phrases: Iterable[str]) -> PromptFilter:
        """This filter with innocent phrases removed before the listed words are looked for."""
        return PromptFilter(self.lexicon, self.listed.plus((), allow=phrases))

    def findings(self, prompt: str, negative: str = "") -> tuple[list[Finding], Counter[str]]:
        """Everything the prompt pair asks for, and which languages its common words point to."""
        found: list[Finding] = []
        languages: Counter[str] = Counter()
        if self.lexicon is not None:
            scan = self.lexicon.scan(prompt)
            languages.update(scan.languages)
            found, young = prompt_findings(scan)
            undressing: list[Finding] = []
            if negative:
                negated = self.lexicon.scan(negative)
                languages.update(negated.languages)
                against, undressing = negative_findings(negated, found)
                found += against
            found = with_minors(found, young, undressing)
        if (term := self.listed.search(prompt)) is not None:
            found.append(Finding(Category.LISTED, "", term, "prompt"))
        if negative and (term := self.listed.search(negative, negative=True)) is not None:
            found.append(Finding(Category.LISTED, "", term, "negative"))
        return found, languages

    def judge(self, prompt: str, negative: str = "", *, suggestive: bool = True) -> Verdict:
        """Whether the prompt pair is allowed; ``suggestive``: whether this server allows suggestive words."""
        found, languages = self.findings(prompt, negative)
        refused = ALWAYS_REFUSED if suggestive else frozenset(Category)
        if (worst := most_severe(found, languages, refused)) is not None:
            return Verdict(False, worst.term, worst.field, prompt, negative, worst.category, worst.language)
        seen = most_severe(found, languages, frozenset({Category.SUGGESTIVE}))
        if seen is not None:
            return Verdict(True, None, None, prompt, negative, Category.SUGGESTIVE, seen.language)
        return Verdict(True, None, None, prompt, negative)

    def first_match(self, prompt: str, negative: str = "") -> str | None:
        """The entry or listed word the prompt (or else the negative prompt) is refused for, or ``None``."""
        return self.judge(prompt, negative).reason

    def check(self, prompt: str, negative: str = "", *, suggestive: bool = True) -> Verdict:
        """The verdict, when both prompts pass.

        Raises
        ------
        PromptRejected
            When either is refused; the message names the field, never the word; ``verdict`` says more.
        """
        if not (verdict := self.judge(prompt, negative, suggestive=suggestive)).allowed:
            raise PromptRejected(verdict)
        return verdict


def judge_lines(prompt_filter: PromptFilter, lines: Iterable[str], *, suggestive: bool = True) -> list[Verdict]:
    """Judge ``prompt<TAB>negative`` lines (the negative part optional); blank and ``#`` lines skipped."""
    verdicts = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        prompt, _, negative = line.rstrip("\r\n").partition("\t")
        verdicts.append(prompt_filter.judge(prompt, negative, suggestive=suggestive))
    return verdicts
