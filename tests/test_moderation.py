from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from moderation_cases import ALLOW_CASES, BLOCK_CASES, EXTRA_TERMS

from t2f.serve.moderation import (
    NEGATIVE_MESSAGE,
    PROMPT_MESSAGE,
    Category,
    PromptFilter,
    PromptRejected,
    Verdict,
    judge_lines,
    normalize,
    safe_echo,
)
from t2f.serve.pattern_check import pattern_problem


@pytest.fixture
def blocklist() -> PromptFilter:
    return PromptFilter.from_file()


@pytest.mark.parametrize(
    "prompt",
    [
        "a NUDE woman",
        "a n u d e woman",
        "a n.u.d.e woman",
        "a nüde woman",  # accent
        "a nud\u200be woman",  # zero-width space
        "a ｎｕｄｅ woman",  # fullwidth
        "a nudе woman",  # Cyrillic е
        "a n00de woman".replace("00", "u"),
        "a nvd3 woman".replace("v", "u"),  # leetspeak 3 -> e
        "a p0rn star",
        "SEX",
        "the man is killed",  # regex entry
    ],
)
def test_disguised_terms_are_caught(blocklist: PromptFilter, prompt: str) -> None:
    assert blocklist.first_match(prompt) is not None
    with pytest.raises(PromptRejected) as caught:
        blocklist.check(prompt)
    assert caught.value.user_message == "Your prompt contains words this server does not allow. Please rephrase it."


@pytest.mark.parametrize(
    "prompt",
    ["a smiling woman with curly hair", "a portrait in Essex", "an old man, skilled carpenter", "bloody mary cocktail"],
)
def test_ordinary_prompts_pass(prompt: str) -> None:
    # "sex" only matches as a whole word; "blood" is in the default list, so use a filter without it here.
    PromptFilter.from_lines(["sex", "nude", "re:\\bkill(ing|ed)?\\b"]).check(prompt)


def test_server_terms_extend_the_list(blocklist: PromptFilter) -> None:
    extended = blocklist.with_terms(["clown"])
    assert extended.first_match("a C-L-O-W-N face") == "clown"
    assert blocklist.first_match("a clown face") is None


def test_normalize() -> None:
    assert normalize("  Ünïcode\u200b  H3LL0, wörld! ") == "unicode hello worldi"  # "!" is leetspeak for i


# -- the rewrite: corpus, larger lists, negative prompts, API --------------------------------------


@pytest.fixture(scope="module")
def strict() -> PromptFilter:
    """The shipped lists plus terms a server might add, several of them hiding inside innocent words."""
    return PromptFilter.from_file().with_terms(EXTRA_TERMS)


def test_every_corpus_line(shared_dir: Path, blocklist: PromptFilter) -> None:
    corpus = shared_dir / "moderation" / "corpus.tsv"
    if not corpus.is_file():
        pytest.skip(f"{corpus} is absent from the shared folder")
    wrong, seen = [], 0
    for line in corpus.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        expect, prompt, negative = [*line.split("\t"), "", ""][:3]
        verdict = blocklist.judge(prompt, negative)
        seen += 1
        if verdict.allowed != (expect == "allow"):
            wrong.append((expect, ascii(prompt), ascii(negative), verdict.reason))
    assert seen >= 50
    assert wrong == []


@pytest.mark.parametrize(("prompt", "negative"), BLOCK_CASES)
def test_disguised_cases_are_blocked(strict: PromptFilter, prompt: str, negative: str) -> None:
    # A strict server: one that refuses suggestive words too ("l1ng3r13" is lingerie).
    verdict = strict.judge(prompt, negative, suggestive=False)
    assert not verdict.allowed
    assert verdict.field == ("negative" if negative else "prompt")


@pytest.mark.parametrize(("prompt", "negative"), ALLOW_CASES)
def test_innocent_cases_pass(strict: PromptFilter, prompt: str, negative: str) -> None:
    assert strict.judge(prompt, negative) == Verdict(True, None, None, prompt, negative)
    strict.check(prompt, negative)


def test_case_lists_are_large() -> None:
    # Further cases than the shared corpus holds: a floor, not a ceiling (see its README).
    assert len(BLOCK_CASES) >= 40
    assert len(ALLOW_CASES) >= 60


def test_negative_prompt_has_its_own_message_and_list(blocklist: PromptFilter) -> None:
    with pytest.raises(PromptRejected) as caught:
        blocklist.check("a woman", "clothes, shirt")
    assert caught.value.user_message == NEGATIVE_MESSAGE
    assert "cloth" not in caught.value.user_message
    with pytest.raises(PromptRejected) as caught:
        blocklist.check("a nude woman", "clothes")
    assert caught.value.user_message == PROMPT_MESSAGE
    assert blocklist.first_match("a woman in a shirt") is None  # garments are only refused as negatives
    refused = Verdict(False, "nude", "negative", "a woman", "nude", Category.SEXUAL, "en")
    assert blocklist.judge("a woman", "nude") == refused


def test_rtl_override_is_read_as_displayed(blocklist: PromptFilter) -> None:
    assert blocklist.first_match("\u202enamow edun") == "nude"
    assert blocklist.first_match("a \u202bxes\u202c scene") == "sex scene"  # displayed: "a sex scene"
    assert blocklist.first_match("\u202enamow a") is None


def test_terms_never_match_inside_words() -> None:
    short = PromptFilter.from_lines(["sex", "kill", "ass"])
    for prompt in ["Essex", "Sussex", "sextant", "skilled", "Kilian", "killer whale", "classic", "as", "assassin"]:
        assert short.first_match(prompt) is None, prompt
    for prompt in ["sexy", "sexes", "kills", "killing", "asses", "a s s", "kkiillll"]:
        assert short.first_match(prompt) is not None, prompt


def test_list_syntax() -> None:
    exact = PromptFilter.from_lines(["=nsfw", "porn*", "blow job", "nude", "# comment", ""])
    assert exact.terms == ("=nsfw", "porn*", "blow job", "nude")
    assert exact.first_match("NSFW art") == "=nsfw"
    assert exact.first_match("nsfws") is None
    assert exact.first_match("pornographic") == "porn*"
    assert exact.first_match("a blow jobs poster") == "blow job"
    assert exact.first_match("nudity") == exact.first_match("nudes") == "nude"
    assert exact.first_match("a nudge") is None


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (r"\bred nose\b", None),
        (r"bad\s*word", None),
        (r"clown.*nose", None),
        (r"(?:ab){2,5}c", None),
        (r"colou?r\s*(?:red|blue|green)", None),
        (r"(?:foo|bar|baz)\s*(?:qux|quux)", None),
        (r"(?=a.*)b", None),
        ("(", "not a regular expression"),
        (r"(?<=a+)b", "not a regular expression"),
        (r"(?<=a|bc)x", "not a regular expression"),
        (r"(a+)+b", "repeats a part"),
        (r"(?:xa|ya)*z", "repeats a part"),
        (r"(?:(?:ab)?c+)*", "repeats a part"),
        (r"(?:.?){25}x", "repeats a part"),
        (r"(?:a?b?)*c", "repeats a part"),
        (r".*a.*a.*a", "too many"),
        (r".*clown.*nose", "too many"),
        (r"a{0,300}b{0,300}c{0,300}", "too many"),
        ("(a|a)?" * 14 + "b", "too many"),
        ("(?:a|a|a|a|a|a|a|a)" * 2 + ".*.*x", "too many"),
        (r"(?:a|a).*.*x", "too many"),
    ],
)
def test_a_server_pattern_that_could_stall_the_bot_is_refused(pattern: str, problem: str | None) -> None:
    said = pattern_problem(pattern)
    assert said is None if problem is None else (said is not None and problem in said)


def test_a_bad_server_pattern_already_saved_is_skipped_not_fatal(blocklist: PromptFilter, caplog) -> None:  # type: ignore[no-untyped-def]
    # Saved before /faceadmin checked patterns: "(" broke every /face, "(a+)+b" took seconds a prompt.
    more = [f"re:zq{letter}" for letter in "abcdefghij"]  # ten patterns at most a server: the 11th is dropped
    extended = blocklist.with_terms(["re:(", "re:(?<=a+)b", "re:(a+)+b", r"re:\bred nose\b", *more])
    assert extended.first_match("a red nose") == r"\bred nose\b"
    assert extended.first_match("a" * 300) is None  # at once: the nested pattern is not run
    assert extended.first_match("zqi") == "zqi" and extended.first_match("zqj") is None
    assert sorted(r.getMessage().split(":")[0] for r in caplog.records) == [
        "a server's pattern '(' is skipped",
        "a server's pattern '(?<=a+)b' is skipped",
        "a server's pattern '(a+)+b' is skipped",
        "a server's pattern 'zqj' is skipped",
    ]


def test_server_terms_keep_the_shipped_lists(blocklist: PromptFilter) -> None:
    extended = blocklist.with_terms(["clown", r"re:\bred nose\b"])
    assert extended.first_match("a red nose") == r"\bred nose\b"
    assert extended.first_match("Al Gore as a c l o w n") == "clown"
    assert extended.first_match("Al Gore") is None  # allow-list kept
    assert extended.first_match("a face", "shirt") == "shirt"  # negative list kept
    assert blocklist.with_terms([]) is blocklist


def test_moderators_can_allow_list_names() -> None:
    assert PromptFilter.from_file().with_terms(["dick"]).first_match("Dick Van Dyke smiling") == "dick"
    tuned = PromptFilter.from_file().with_allowed(["dick van dyke"]).with_terms(["dick"])
    assert tuned.first_match("Dick Van Dyke smiling") is None
    assert tuned.first_match("Dick Van Dyke and a dick") == "dick"


def test_judge_lines(blocklist: PromptFilter) -> None:
    lines = ["# prompt<TAB>negative", "a smiling man", "", "a woman\tclothes", "s.e.x\t", "a man\tblurry\n"]
    verdicts = judge_lines(blocklist, lines)
    assert [(v.allowed, v.reason, v.field) for v in verdicts] == [
        (True, None, None),
        (False, "clothes", "negative"),
        (False, "sex", "prompt"),
        (True, None, None),
    ]
    assert verdicts[1].prompt == "a woman" and verdicts[1].negative == "clothes"
    assert verdicts[3].negative == "blurry"


def test_safe_echo() -> None:
    echoed = safe_echo("```nude```\nline two\r\n\u202enamow\u202c\u200b\u2066x\u2069\x00")
    assert "`" not in echoed and "\n" not in echoed and "\r" not in echoed and "\x00" not in echoed
    assert not any(unicodedata.category(c) == "Cf" for c in echoed)
    assert echoed == "\u02cb\u02cb\u02cbnude\u02cb\u02cb\u02cb line two namowx"
    assert safe_echo("a" * 500, limit=10) == "a" * 9 + "…"
    assert safe_echo("Zoë's café, 東京") == "Zoë's café, 東京"


def test_normalize_strips_bidi_and_maps_confusables() -> None:
    assert normalize("\u202eΝUDE\u200f \u2067x\u2069") == "nude x"  # Greek capital Nu
    assert normalize("ɴᴜᴅᴇ ⓝⓤⓓⓔ") == "nude nude"
    assert normalize("Привет") == ""  # a foreign word is no word: its letters are not wildcards


def test_nsfw_in_a_negative_prompt_asks_for_less_and_passes(blocklist: PromptFilter) -> None:
    assert blocklist.judge("a smiling woman", "nsfw, lowres, bad anatomy").allowed
    assert not blocklist.judge("nsfw woman").allowed
    assert not blocklist.judge("a woman", "nsfw, clothes").allowed  # the negative list still applies
