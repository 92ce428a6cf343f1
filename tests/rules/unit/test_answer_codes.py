"""The rules service answers only what its contract names: every field code with the params the
contract documents, so a client words each refusal in its own language without its rule tables."""

import uuid

import pytest

from services.rules.application.handlers import _refused
from services.rules.domain.rules import (
    MAX_AUTOREPLY_WIDTH,
    MAX_DESTINATIONS,
    MAX_MATCH_LENGTH,
    MAX_RULES,
    Condition,
    Forward,
    Refused,
    RuleSet,
    with_autoreply,
    with_forward,
    with_receive,
    with_spam_sort,
    without_forward,
)
from shared.contracts import rules as contract
from shared.contracts.rules import GetRules
from shared.plans import Plan
from tests.answer_codes import check_rejected

ADDRESS = "taro@example.jp"
INTERNAL = frozenset({"forward.example.jp"})


def _rules(plan: Plan = Plan.KWC, forwards: tuple[Forward, ...] = ()) -> RuleSet:
    return RuleSet(address=ADDRESS, plan=plan, forwards=forwards)


def _with_rules(count: int) -> RuleSet:
    return _rules(forwards=tuple(Forward(str(n), Condition.FROM, "x", (f"d{n}@example.org",)) for n in range(count)))


BROKEN = {
    "empty autoreply, sv-basic quoting": lambda: with_autoreply(_rules(Plan.KWC), " ", True),
    "too wide, characters and controls": lambda: with_autoreply(_rules(), "〜\x07" + "a" * MAX_AUTOREPLY_WIDTH, False),
    "spam sort on sv-basic": lambda: with_spam_sort(_rules(Plan.SV_BASIC), True),
    "receive off losing mail": lambda: with_receive(_rules(), False, accept_loss=False),
    "keyword on all": lambda: with_forward(_rules(), Condition.ALL, "x", ["a@example.org"]),
    "empty keyword, no destination": lambda: with_forward(_rules(), Condition.FROM, "", []),
    "long keyword with controls": lambda: with_forward(_rules(), Condition.SUBJECT, "\x01" * (MAX_MATCH_LENGTH + 1), ["a@example.org"]),
    "bad destinations": lambda: with_forward(_with_rules(1), Condition.ALL, "", [
        "-rf@example.org", "x" * 65 + "@example.org", "a@forward.example.jp", ADDRESS, "d0@example.org"], INTERNAL),
    "too many destinations": lambda: with_forward(_rules(), Condition.ALL, "",
                                                  [f"d{n}@example.org" for n in range(MAX_DESTINATIONS + 1)]),
    "too many rules": lambda: with_forward(_with_rules(MAX_RULES), Condition.FROM, "x", ["a@example.org"]),
    "unknown entry": lambda: without_forward(_rules(), "42", accept_loss=False),
}


def _violations(change) -> Refused:
    with pytest.raises(Refused) as caught:
        change()
    return caught.value


@pytest.mark.parametrize("change", BROKEN.values(), ids=BROKEN.keys())
def test_every_refusal_is_one_the_contract_documents(change):
    """Ensure every refusal's codes are the contract's and each field error carries exactly its documented params."""
    command = GetRules(actor_token="token", address=ADDRESS, message_id=uuid.uuid4())

    check_rejected(_refused(command, _violations(change).violations), contract)


def test_every_code_the_contract_names_is_answered():
    """Ensure the contract names no field code the rules service never answers (the list stays true)."""
    answered = {v.code for change in BROKEN.values() for v in _violations(change).violations}

    assert answered == set(contract.FIELD_CODES)


def test_the_autoreply_limit_and_the_refused_characters_travel_as_params():
    """Ensure a too wide autoreply says its width and the limit, and a refused character itself and its code point."""
    violations = _violations(lambda: with_autoreply(_rules(), "～" + "あ" * 300, False)).violations

    assert {v.code: v.params for v in violations} == {
        "too_wide": {"width": 602, "max_width": MAX_AUTOREPLY_WIDTH, "full_width_units": 2, "other_units": 1},
        "unsupported_character": {"characters": "～", "code_points": "U+FF5E", "plan": "kwc"},
    }
