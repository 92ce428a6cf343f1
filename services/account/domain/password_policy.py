"""Password rules per policy (SPEC "Passwords"), one table row per rule."""

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from shared.contracts.account import AccountFieldCode
from shared.plans import PasswordPolicyName

STRONG_MIN_LENGTH = 12
STRONG_MAX_LENGTH = 128
STRONG_SYMBOLS = "#()+-.[]{}!<>_:*$@%^&,~"
BASIC_MIN_LENGTH = 8
BASIC_MAX_LENGTH = 16
BASIC_SYMBOLS = "-_."
BASIC_MAX_DIGIT_RUN = 5

_LETTERS_AND_DIGITS = string.ascii_letters + string.digits
# [0-9], not \d: \d also matches full-width and other Unicode digits.
_DIGIT_RUN = re.compile(rf"[0-9]{{{BASIC_MAX_DIGIT_RUN + 1},}}")


Params = Mapping[str, int | str]


@dataclass(frozen=True)
class Violation:
    code: AccountFieldCode
    message: str
    params: Params = field(default_factory=dict)
    """every number or name the message says (the policy's, never the password's)"""


@dataclass(frozen=True)
class _AccountNames:
    local_part: str
    domain: str
    full_address: str

    @classmethod
    def of(cls, address: str) -> "_AccountNames":
        full = address.casefold()
        local_part, _, domain = full.rpartition("@")
        return cls(local_part=local_part, domain=domain, full_address=full)


Predicate = Callable[[str, _AccountNames], bool]


@dataclass(frozen=True)
class _Rule:
    code: AccountFieldCode
    message: str
    is_met: Predicate
    params: Params = field(default_factory=dict)


def _length_at_least(minimum: int) -> Predicate:
    return lambda password, _names: len(password) >= minimum


def _length_at_most(maximum: int) -> Predicate:
    return lambda password, _names: len(password) <= maximum


def _contains_any_of(characters: str) -> Predicate:
    return lambda password, _names: any(char in characters for char in password)


def _ascii_only(password: str, _names: _AccountNames) -> bool:
    return password.isascii()


def _ascii_limited_to(allowed: str) -> Predicate:
    # Non-ASCII characters are reported by their own rule, not a second time here.
    return lambda password, _names: all(
        char in allowed for char in password if char.isascii()
    )


def _differs_from(name_of: Callable[[_AccountNames], str]) -> Predicate:
    def differs(password: str, names: _AccountNames) -> bool:
        name = name_of(names)
        return not name or password.casefold() != name

    return differs


def _no_long_digit_run(password: str, _names: _AccountNames) -> bool:
    return _DIGIT_RUN.search(password) is None


_NON_ASCII = _Rule(
    "non_ascii_character",
    "must use half-width (ASCII) characters only; "
    "full-width and other non-ASCII characters are not allowed",
    _ascii_only,
)

_STRONG_RULES = (
    _Rule("too_short", f"must be at least {STRONG_MIN_LENGTH} characters long",
          _length_at_least(STRONG_MIN_LENGTH), {"min_length": STRONG_MIN_LENGTH}),
    _Rule("too_long", f"must be at most {STRONG_MAX_LENGTH} characters long",
          _length_at_most(STRONG_MAX_LENGTH), {"max_length": STRONG_MAX_LENGTH}),
    _NON_ASCII,
    _Rule("forbidden_character",
          "contains characters outside the allowed set: only letters, digits "
          f"and the symbols {' '.join(STRONG_SYMBOLS)} are allowed (no spaces)",
          _ascii_limited_to(_LETTERS_AND_DIGITS + STRONG_SYMBOLS), {"symbols": STRONG_SYMBOLS}),
    _Rule("missing_lowercase", "must contain at least one lowercase letter (a-z)",
          _contains_any_of(string.ascii_lowercase)),
    _Rule("missing_uppercase", "must contain at least one uppercase letter (A-Z)",
          _contains_any_of(string.ascii_uppercase)),
    _Rule("missing_digit", "must contain at least one digit (0-9)",
          _contains_any_of(string.digits)),
    _Rule("missing_symbol",
          f"must contain at least one of the symbols {' '.join(STRONG_SYMBOLS)}",
          _contains_any_of(STRONG_SYMBOLS), {"symbols": STRONG_SYMBOLS}),
)

_BASIC_RULES = (
    _Rule("too_short", f"must be at least {BASIC_MIN_LENGTH} characters long",
          _length_at_least(BASIC_MIN_LENGTH), {"min_length": BASIC_MIN_LENGTH}),
    _Rule("too_long", f"must be at most {BASIC_MAX_LENGTH} characters long",
          _length_at_most(BASIC_MAX_LENGTH), {"max_length": BASIC_MAX_LENGTH}),
    _NON_ASCII,
    _Rule("forbidden_character",
          "contains characters outside the allowed set: only letters, digits "
          f"and the symbols {' '.join(BASIC_SYMBOLS)} are allowed (no spaces)",
          _ascii_limited_to(_LETTERS_AND_DIGITS + BASIC_SYMBOLS), {"symbols": BASIC_SYMBOLS}),
    _Rule("missing_letter", "must contain at least one letter (A-Z or a-z)",
          _contains_any_of(string.ascii_letters)),
    _Rule("missing_digit", "must contain at least one digit (0-9)",
          _contains_any_of(string.digits)),
    _Rule("same_as_local_part",
          "must not be the same as the account name (the part before @)",
          _differs_from(lambda names: names.local_part)),
    _Rule("same_as_address", "must not be the same as the mail address",
          _differs_from(lambda names: names.full_address)),
    _Rule("same_as_domain", "must not be the same as the domain name",
          _differs_from(lambda names: names.domain)),
    _Rule("six_consecutive_digits",
          f"must not contain {BASIC_MAX_DIGIT_RUN + 1} or more digits in a row",
          _no_long_digit_run, {"digits": BASIC_MAX_DIGIT_RUN + 1}),
)

_RULES_BY_POLICY: Mapping[PasswordPolicyName, tuple[_Rule, ...]] = MappingProxyType({
    PasswordPolicyName.STRONG: _STRONG_RULES,
    PasswordPolicyName.BASIC: _BASIC_RULES,
})


def check_password(
    password: str, *, policy: PasswordPolicyName, address: str
) -> tuple[Violation, ...]:
    """Return every rule of the policy the password breaks; empty means acceptable."""
    names = _AccountNames.of(address)
    return tuple(
        Violation(code=rule.code, message=rule.message, params=rule.params)
        for rule in _RULES_BY_POLICY[policy]
        if not rule.is_met(password, names)
    )
