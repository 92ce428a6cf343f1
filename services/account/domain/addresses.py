"""Mail addresses, restricted to a conservative safe subset.

The address ends up as a file name and inside IMAP commands and Sieve scripts, so
we accept far less than RFC 5321 allows: no quoting, no comments, no IP literals.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

MAX_LOCAL_LENGTH = 64
MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63
MAX_ADDRESS_LENGTH = 254

_LOCAL_CHARACTERS = re.compile(r"[a-z0-9._+-]*")
_LABEL = re.compile(rf"[a-z0-9](?:[a-z0-9-]{{0,{MAX_LABEL_LENGTH - 2}}}[a-z0-9])?")

Check = Callable[[str], bool]


class InvalidAddress(ValueError):
    """Every rule the address breaks, in its message; `params` holds the limits it may name."""

    params: Mapping[str, int] = MappingProxyType({
        "min_length": 1, "max_local_length": MAX_LOCAL_LENGTH, "max_domain_length": MAX_DOMAIN_LENGTH,
        "max_label_length": MAX_LABEL_LENGTH, "max_length": MAX_ADDRESS_LENGTH})


def _labels_valid(domain: str) -> bool:
    return all(_LABEL.fullmatch(label) for label in domain.split("."))


_LOCAL_PART_RULES: tuple[tuple[str, Check], ...] = (
    (f"the part before @ must be 1 to {MAX_LOCAL_LENGTH} characters long",
     lambda local: 1 <= len(local) <= MAX_LOCAL_LENGTH),
    ("the part before @ may contain only a-z, 0-9 and . _ + -",
     lambda local: _LOCAL_CHARACTERS.fullmatch(local) is not None),
    ("the part before @ must not start or end with a dot",
     lambda local: not local.startswith(".") and not local.endswith(".")),
    ("the part before @ must not contain two dots in a row",
     lambda local: ".." not in local),
    # A leading '-' would be read as an option by command-line tools.
    ("the part before @ must not start with a hyphen",
     lambda local: not local.startswith("-")),
)

_DOMAIN_RULES: tuple[tuple[str, Check], ...] = (
    (f"the domain must be 1 to {MAX_DOMAIN_LENGTH} characters long",
     lambda domain: 1 <= len(domain) <= MAX_DOMAIN_LENGTH),
    ("the domain must have at least two labels, like example.jp",
     lambda domain: "." in domain),
    (f"each domain label must be 1 to {MAX_LABEL_LENGTH} characters of a-z, 0-9 "
     "and -, not starting or ending with -",
     _labels_valid),
)


def _broken_rules(rules: tuple[tuple[str, Check], ...], value: str) -> list[str]:
    return [message for message, is_met in rules if not is_met(value)]


@dataclass(frozen=True)
class Address:
    local: str
    domain: str

    def __post_init__(self) -> None:
        problems = _broken_rules(_LOCAL_PART_RULES, self.local)
        problems += _broken_rules(_DOMAIN_RULES, self.domain)
        if len(self.full) > MAX_ADDRESS_LENGTH:
            problems.append(f"the address must be at most {MAX_ADDRESS_LENGTH} characters long")
        if problems:
            raise InvalidAddress("invalid mail address: " + "; ".join(problems))

    @property
    def full(self) -> str:
        return f"{self.local}@{self.domain}"

    def __str__(self) -> str:
        return self.full


def parse_address(text: str) -> Address:
    """Parse 'user@example.jp' (any case) into a lowercase Address, or raise InvalidAddress."""
    if text.count("@") != 1:
        raise InvalidAddress("invalid mail address: it must contain exactly one @")
    # Checked before lowercasing: some non-ASCII letters lowercase to ASCII ones
    # (KELVIN SIGN becomes 'k'), which would let a look-alike through.
    if not text.isascii():
        raise InvalidAddress("invalid mail address: only ASCII characters are allowed")
    local, domain = text.lower().split("@")
    return Address(local=local, domain=domain)


ADMIN_LOGIN_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
"""Admins sign in with a name without '@', so it never collides with a mail address."""
