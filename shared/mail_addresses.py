"""What we accept as one mail address out in the world (a forward's destination, where a copy job's
notice goes): exactly one `local@domain`, in a plain form every mail system reads the same way — no
display name, no list, no comments, no quoting, nothing a header or an SMTP command could split. Pure."""

import re
from collections.abc import Mapping
from types import MappingProxyType

MAX_LOCAL_LENGTH = 64
MAX_ADDRESS_LENGTH = 254
LIMITS: Mapping[str, int] = MappingProxyType({"min_length": 1, "max_length": MAX_ADDRESS_LENGTH,
                                             "max_local_length": MAX_LOCAL_LENGTH})
"""the numbers what `address_problem` says may name, for a client to word it"""
_LOCAL = re.compile(r"[A-Za-z0-9._%+=-]+")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def address_problem(text: str) -> str | None:
    """Why `text` is not one plain mail address (None: it is)."""
    if text.startswith("-"):
        return "must not start with -"
    if len(text) > MAX_ADDRESS_LENGTH or text.count("@") != 1:
        return f"is not one mail address (one @, at most {MAX_ADDRESS_LENGTH} characters)"
    local, domain = text.split("@")
    if not (_LOCAL.fullmatch(local) and len(local) <= MAX_LOCAL_LENGTH
            and not local.startswith(".") and not local.endswith(".") and ".." not in local):
        return (f"is not a mail address: the part before @ must be 1 to {MAX_LOCAL_LENGTH} of A-Z a-z 0-9 . _ % + = -, "
                "without a dot first, last or twice in a row")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label.lower()) for label in labels):
        return "is not a mail address: the domain must be like example.jp"
    return None


def normalized(text: str) -> str:
    """As written, with the domain lowercased (a local part's case is the receiving server's)."""
    local, _, domain = text.partition("@")
    return f"{local}@{domain.lower()}"
