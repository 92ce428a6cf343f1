"""The completion messages of the mail settings pages (spam tag and sort, receive, forwarding, autoreply), as msgids (see messages.py)."""

from collections.abc import Mapping

DONE: Mapping[str, str] = {}
"""key (the `done` of a redirect) -> msgid marked with messages.N_"""
