"""Every limit SPEC sets on rule sets, at its edge."""

import pytest

from services.rules.domain.rules import (
    MAX_AUTOREPLY_WIDTH,
    NOT_ROUND_TRIPPING,
    Refused,
    RuleSet,
    width,
    with_autoreply,
    with_receive,
    with_spam_sort,
)
from shared.plans import Plan

STRICT_PLANS = [Plan.BUSINESS_STANDARD, Plan.KWC]


def rules(plan: Plan = Plan.KWC) -> RuleSet:
    return RuleSet(address="taro@example.jp", plan=plan)


def refusal(change) -> Refused:
    with pytest.raises(Refused) as caught:
        change()
    return caught.value


@pytest.mark.parametrize(("text", "units"), [
    ("a" * 600, 600), ("あ" * 300, 600), ("あ" * 300 + "a", 601), ("ｱ", 1), ("○", 2), ("a\nb", 3), ("a\r\nb", 3),
    ("😀", 2), ("é", 2), ("e", 1),
])
def test_width_counts_full_width_and_ambiguous_as_two(text, units):
    assert width(text) == units


@pytest.mark.parametrize("text", ["a" * 600, "あ" * 300, "あ" * 299 + "aa", "a\n" * 300])
def test_an_autoreply_of_600_units_is_accepted(text):
    assert with_autoreply(rules(), text, False).autoreply.text == text


@pytest.mark.parametrize("text", ["a" * 601, "あ" * 300 + "a", "あ" * 301, "a\n" * 300 + "a"])
def test_an_autoreply_over_600_units_is_refused_naming_limit_field_and_value(text):
    [violation] = refusal(lambda: with_autoreply(rules(), text, False)).violations

    assert (violation.field, violation.code) == ("text", "too_wide")
    assert str(MAX_AUTOREPLY_WIDTH) in violation.message and str(width(text)) in violation.message


@pytest.mark.parametrize("plan", STRICT_PLANS)
@pytest.mark.parametrize("character", sorted(NOT_ROUND_TRIPPING))
def test_characters_that_do_not_round_trip_are_refused_on_strict_plans(plan, character):
    [violation] = refusal(lambda: with_autoreply(rules(plan), f"away {character} back", False)).violations

    assert violation.code == "unsupported_character" and f"U+{ord(character):04X}" in violation.message


@pytest.mark.parametrize("character", sorted(NOT_ROUND_TRIPPING))
def test_the_same_characters_are_fine_on_sv_basic(character):
    assert with_autoreply(rules(Plan.SV_BASIC), f"away {character} back", False).autoreply is not None


def test_ascii_tilde_and_hyphen_are_fine_everywhere():
    assert with_autoreply(rules(), "~ - back on 12-01", False).autoreply is not None


def test_every_broken_rule_is_named_at_once():
    """Ensure one refusal lists width, characters, controls and the plan option together."""
    text = "〜" * 301 + "\x07"
    codes = {v.code for v in refusal(lambda: with_autoreply(rules(Plan.KWC), text, True)).violations}

    assert codes == {"too_wide", "unsupported_character", "control_character", "not_allowed_on_plan"}


def test_an_empty_autoreply_is_refused():
    assert refusal(lambda: with_autoreply(rules(), " \n ", False)).violations[0].code == "empty"


def test_include_original_is_sv_basic_only():
    assert with_autoreply(rules(Plan.SV_BASIC), "away", True).autoreply.include_original
    assert refusal(lambda: with_autoreply(rules(Plan.KWC), "away", True)).violations[0].field == "include_original"


def test_spam_sort_is_refused_on_sv_basic():
    assert refusal(lambda: with_spam_sort(rules(Plan.SV_BASIC), True)).violations[0].code == "not_allowed_on_plan"
    assert not with_spam_sort(rules(Plan.SV_BASIC), False).spam_sort
    assert with_spam_sort(rules(Plan.KWC), True).spam_sort


def test_receive_off_needs_the_loss_accepted():
    """Ensure switching receive off without forwarding is refused unless the caller accepts losing mail."""
    assert refusal(lambda: with_receive(rules(), False, accept_loss=False)).violations[0].field == "accept_loss"
    assert not with_receive(rules(), False, accept_loss=True).receive


def test_every_change_bumps_the_version():
    changed = with_spam_sort(with_autoreply(rules(), "away", False), True)
    assert changed.version == 3
