import pytest

from shared.plans import (
    PLANS,
    Capability,
    PasswordPolicyName,
    Plan,
    allows,
)

BS, KWC, SV = Plan.BUSINESS_STANDARD, Plan.KWC, Plan.SV_BASIC

# SPEC "Plans", row by row: capability -> plans that have it.
EXPECTED_CAPABILITIES = {
    Capability.CHANGE_QUOTA: {BS, KWC},
    Capability.SPAM_SUBJECT_TAG: {BS, KWC, SV},
    Capability.SPAM_AUTOSORT: {BS, KWC},
    Capability.FORWARDING: {BS, KWC, SV},
    Capability.AUTOREPLY: {BS, KWC, SV},
    Capability.AUTOREPLY_INCLUDE_BODY: {SV},
    Capability.AUTOREPLY_ANY_CHARACTER: {SV},  # SPEC Autoreply: the character rule is for business-standard and kwc
    Capability.RECEIVE_TOGGLE: {BS, KWC, SV},
    Capability.MAIL_COPY: {BS, KWC},
    Capability.MAIL_PURGE: {BS, KWC, SV},
    Capability.RETENTION: {BS, KWC},
}

MATRIX = [
    (plan, capability, plan in plans)
    for capability, plans in EXPECTED_CAPABILITIES.items()
    for plan in Plan
]


@pytest.mark.parametrize(("plan", "capability", "expected"), MATRIX)
def test_plan_table_matches_spec(plan, capability, expected):
    """Ensure each plan allows exactly the capabilities the SPEC table gives it."""
    assert allows(plan, capability) is expected


def test_expected_table_covers_every_capability():
    """Ensure no capability is left out of the SPEC comparison."""
    assert set(EXPECTED_CAPABILITIES) == set(Capability)


@pytest.mark.parametrize(
    ("plan", "policy"),
    [(BS, PasswordPolicyName.STRONG), (KWC, PasswordPolicyName.STRONG),
     (SV, PasswordPolicyName.BASIC)],
)
def test_password_policy_per_plan(plan, policy):
    """Ensure business-standard and kwc use the strong policy and sv-basic the basic one."""
    assert PLANS[plan].password_policy is policy


def test_every_plan_has_rules():
    """Ensure the table has one row for every plan."""
    assert set(PLANS) == set(Plan)


@pytest.mark.parametrize(
    ("capability", "plan"),
    [(Capability.CHANGE_QUOTA, SV), (Capability.SPAM_AUTOSORT, SV),
     (Capability.MAIL_COPY, SV), (Capability.RETENTION, SV),
     (Capability.AUTOREPLY_INCLUDE_BODY, BS), (Capability.AUTOREPLY_INCLUDE_BODY, KWC)],
)
def test_refused_capabilities(capability, plan):
    """Ensure the capabilities the SPEC marks 'no' are refused on that plan."""
    assert not allows(plan, capability)


@pytest.mark.parametrize(
    ("plan", "value"),
    [(BS, "business-standard"), (KWC, "kwc"), (SV, "sv-basic")],
)
def test_plan_values(plan, value):
    """Ensure plans parse from and serialise to their SPEC names."""
    assert Plan(value) is plan
    assert str(plan) == value


@pytest.mark.parametrize("capability", list(Capability))
def test_capability_values_are_lower_snake_case(capability):
    """Ensure every capability value is the lower snake case of its name."""
    assert capability.value == capability.name.lower()


def test_plan_table_is_read_only():
    """Ensure the shared plan table cannot be changed at run time."""
    with pytest.raises(TypeError):
        PLANS[SV] = PLANS[BS]  # type: ignore[index]
