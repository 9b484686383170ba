"""Prompt moderation for servers: categories and meaning, in the languages members write.

A prompt and its negative prompt are folded into readings that disguises do not survive (``fold``),
looked up in per-language lexicons, one file per category (``lexicon``, ``entries``, ``index``), and the
entries found are combined by rules (``rules``): nudity said without a nudity word, a child beside
anything sexual or suggestive, clothing removed by a negative prompt. ``filter`` puts it together with
the words an operator or a server adds (``listed``). The lexicons are plain text in ``data/``, one
folder per language; ``data/README.md`` explains their syntax.
"""

from t2f.serve.moderation.echo import safe_echo
from t2f.serve.moderation.entries import LexiconError
from t2f.serve.moderation.filter import (
    NEGATIVE_MESSAGE,
    PROMPT_MESSAGE,
    PromptFilter,
    PromptRejected,
    Verdict,
    judge_lines,
)
from t2f.serve.moderation.fold import normalize
from t2f.serve.moderation.lexicon import LANGUAGE_NAMES, LANGUAGES, Lexicon
from t2f.serve.moderation.rules import Category, Finding

__all__ = [
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "NEGATIVE_MESSAGE",
    "PROMPT_MESSAGE",
    "Category",
    "Finding",
    "Lexicon",
    "LexiconError",
    "PromptFilter",
    "PromptRejected",
    "Verdict",
    "judge_lines",
    "normalize",
    "safe_echo",
]
