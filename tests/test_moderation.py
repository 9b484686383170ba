from __future__ import annotations

import pytest

from t2f.serve.moderation import PromptFilter, PromptRejected, normalize


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
