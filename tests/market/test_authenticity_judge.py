"""The authenticity verdict (market.authenticity.judge): what counts as the claimed model."""

import pytest

from market.authenticity import judge, name_matches


@pytest.mark.parametrize(
    ("answered", "matches"),
    [
        ("deepseek-v4-flash", True),
        ("DeepSeek-V4-Flash", True),
        ("deepseek/deepseek-v4-flash", True),
        ("deepseek-v4-flash-2026-07-24", True),
        ("deepseek-v4-flash-lite", False),
        ("deepseek-v4", False),
        ("qwen2.5-7b-instruct", False),
    ],
)
def test_a_dated_snapshot_is_the_same_model_and_a_variant_is_not(answered, matches):
    assert name_matches("deepseek-v4-flash", answered) is matches


def test_highspeed_is_not_the_base_model():
    assert not name_matches("MiniMax-M2.5", "MiniMax-M2.5-highspeed")


def test_a_matching_name_and_count_pass():
    assert judge(asked_model="m", answered_model="m", expected_tokens=30, answered_tokens=30) == (
        "passed",
        "",
    )


def test_without_an_expected_count_the_name_decides():
    assert (
        judge(asked_model="m", answered_model="m", expected_tokens=None, answered_tokens=41)[0]
        == "passed"
    )
    assert (
        judge(asked_model="m", answered_model="x", expected_tokens=None, answered_tokens=41)[0]
        == "failed"
    )


def test_a_wrong_count_fails_even_under_the_right_name():
    verdict, reason = judge(
        asked_model="m", answered_model="m", expected_tokens=30, answered_tokens=31
    )
    assert verdict == "failed"
    assert reason == "the fixed probe text cost 31 input tokens (expected 30: another tokenizer)"


def test_an_answer_that_says_nothing_is_inconclusive_not_a_failure():
    assert judge(asked_model="m", answered_model="", expected_tokens=30, answered_tokens=None) == (
        "inconclusive",
        "the answer named no model and no comparable usage",
    )
    assert (
        judge(asked_model="m", answered_model="", expected_tokens=30, answered_tokens=30)[0]
        == "passed"
    )
