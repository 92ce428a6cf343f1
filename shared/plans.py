"""What each hosting plan allows, as one table every service reads (SPEC "Plans")."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Plan(StrEnum):
    BUSINESS_STANDARD = "business-standard"
    KWC = "kwc"
    SV_BASIC = "sv-basic"


class Capability(StrEnum):
    CHANGE_QUOTA = "change_quota"
    SPAM_SUBJECT_TAG = "spam_subject_tag"
    SPAM_AUTOSORT = "spam_autosort"
    FORWARDING = "forwarding"
    AUTOREPLY = "autoreply"
    AUTOREPLY_INCLUDE_BODY = "autoreply_include_body"
    AUTOREPLY_ANY_CHARACTER = "autoreply_any_character"
    """no characters refused for not surviving ISO-2022-JP/Shift_JIS round trips"""
    RECEIVE_TOGGLE = "receive_toggle"
    MAIL_COPY = "mail_copy"
    MAIL_PURGE = "mail_purge"
    RETENTION = "retention"


class PasswordPolicyName(StrEnum):
    STRONG = "strong"
    BASIC = "basic"


@dataclass(frozen=True)
class PlanRules:
    password_policy: PasswordPolicyName
    capabilities: frozenset[Capability]


# Create/delete account, change password and change comment are allowed on every
# plan, so they are not capabilities at all.
_SHARED_BY_ALL_PLANS = frozenset({
    Capability.SPAM_SUBJECT_TAG,
    Capability.FORWARDING,
    Capability.AUTOREPLY,
    Capability.RECEIVE_TOGGLE,
    Capability.MAIL_PURGE,
})

_FULL_FEATURED = _SHARED_BY_ALL_PLANS | {
    Capability.CHANGE_QUOTA,
    Capability.SPAM_AUTOSORT,
    Capability.MAIL_COPY,
    Capability.RETENTION,
}

PLANS: Mapping[Plan, PlanRules] = MappingProxyType({
    Plan.BUSINESS_STANDARD: PlanRules(PasswordPolicyName.STRONG, _FULL_FEATURED),
    Plan.KWC: PlanRules(PasswordPolicyName.STRONG, _FULL_FEATURED),
    Plan.SV_BASIC: PlanRules(
        PasswordPolicyName.BASIC,
        _SHARED_BY_ALL_PLANS | {Capability.AUTOREPLY_INCLUDE_BODY, Capability.AUTOREPLY_ANY_CHARACTER},
    ),
})


def allows(plan: Plan, capability: Capability) -> bool:
    return capability in PLANS[plan].capabilities
