"""Which of a source message's flags may reach our APPEND: RFC 3501 flags only. The source writes
its FLAGS answer, and anything but an atom there — a literal's `{1+}`, a quote, a parenthesis, a
space — would change what the command line it lands in means to our Dovecot (in the user's own
session). The rest is dropped and counted. Pure."""

import re
from collections.abc import Iterable

SYSTEM_FLAGS = frozenset({"\\answered", "\\flagged", "\\deleted", "\\seen", "\\draft"})
"""the system flags a client may set (\\Recent is the server's, per session)"""
KEYWORD = re.compile(r"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]{1,200}")
"""RFC 3501 flag-keyword: an atom (CHAR but ( ) { SP CTL % * " \\ ]), of a sane length"""


def kept_flags(flags: Iterable[str]) -> tuple[tuple[str, ...], int]:
    """The flags to set here (each once, in order) and how many were dropped as not flags."""
    kept: dict[str, None] = {}
    dropped = 0
    for flag in flags:
        if flag.lower() == "\\recent":
            continue
        if flag.lower() in SYSTEM_FLAGS or KEYWORD.fullmatch(flag):
            kept[flag] = None
        else:
            dropped += 1
    return tuple(kept), dropped
