"""Whether a moderator's ``re:`` pattern is safe to run on every prompt.

Every server pattern runs on every prompt (and negative prompt), on the bot's event loop, and Python's
regex engine backtracks. Measured here on 300 letters (the longest prompt a member may send):
``.*.*.*x`` 0.4 s, ``.*a.*a.*a.*x`` 22 s, and a repeat inside a repeat (``(a+)+b``, ``(?:a?a?)+b``) grows
without bound. So a pattern's ways to try a match are estimated from its parse: each optional part
doubles them, a group of alternatives multiplies them by its count, a repeat by the prompt's length;
and a repeat may hold no repeat, optional part or alternatives of its own. Of ~96,000 random patterns
within :data:`MAX_WAYS`, the slowest took 10 ms on a 300-letter prompt; with two repeats allowed,
~100 ms.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from t2f.bounds import MEMBER_NEGATIVE_CHARS, MEMBER_PROMPT_CHARS

# The regex engine's own parse of a pattern: no public API offers it, nor do the stubs.
_parser: Any = importlib.import_module("re._parser")
_sre: Any = importlib.import_module("re._constants")
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)

PROMPT_CHARS = max(MEMBER_PROMPT_CHARS.high, MEMBER_NEGATIVE_CHARS.high)  # the longest text a pattern meets
MAX_WAYS = 3_000  # one repeat with ten alternatives beside it; two repeats (90,000) are refused
MAX_SERVER_PATTERNS = 10  # at ~10 ms each at worst
NESTED = (
    "That pattern repeats a part that has its own repeat, optional part or alternatives, like (a+)+ or "
    "(x|yz)*: on some prompts it would run for minutes. Add the words one by one instead."
)
TOO_MANY_PATTERNS = f"This server already has {MAX_SERVER_PATTERNS} patterns; remove one first."
TOO_MANY_WAYS = (
    "That pattern has too many repeats, optional parts and alternatives together: on a long prompt it would "
    "run for seconds. Split it into simpler patterns or add the words one by one."
)


def server_pattern_problem(source: str, patterns_before: int) -> str | None:
    """Why ``source`` cannot be a server's next pattern, after ``patterns_before`` it already has; ``None``."""
    if problem := pattern_problem(source):
        return problem
    return TOO_MANY_PATTERNS if patterns_before >= MAX_SERVER_PATTERNS else None


def pattern_problem(source: str) -> str | None:
    """Why ``source`` cannot be a server's pattern, as a sentence for the moderator; ``None`` if it can."""
    try:
        re.compile(source)  # some errors (a look-behind of varying width) show only when compiling
        parsed = _parser.parse(source)
    except re.error as exc:
        return f"That is not a regular expression Python can read ({exc})."
    ways = _ways(list(parsed), inside=False)
    if ways is None:
        return NESTED
    return TOO_MANY_WAYS if ways > MAX_WAYS else None


def _ways(items: list[tuple[Any, Any]], *, inside: bool) -> float | None:
    """How many ways the parsed ``items`` may try to match a prompt, at most; ``None`` when a repeat holds
    a repeat, an optional part or alternatives (``inside``: within a repeat already)."""
    total = 1.0
    for op, av in items:
        if op in _REPEATS:
            low, high, body = av
            counted = high > 1
            if inside or (inner := _ways(list(body), inside=counted)) is None:
                return None
            total *= PROMPT_CHARS if counted else inner + (1 if low == 0 else 0)
        elif op is _sre.BRANCH or op is _sre.GROUPREF_EXISTS:
            if inside:
                return None
            options = list(av[1]) if op is _sre.BRANCH else [b if b is not None else [] for b in av[1:]]
            each = [_ways(list(option), inside=False) for option in options]
            if any(ways is None for ways in each):
                return None
            total *= sum(ways for ways in each if ways is not None)
        elif (body := _body(op, av)) is not None:
            if (inner := _ways(list(body), inside=inside)) is None:
                return None
            total *= inner
    return total


def _body(op: Any, av: Any) -> Any:
    """The sub-pattern of a group or a look-around; ``None`` for anything else (literals, classes, anchors)."""
    if op is _sre.SUBPATTERN:
        return av[3]
    if op is _sre.ATOMIC_GROUP:
        return av
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return av[1]
    return None
