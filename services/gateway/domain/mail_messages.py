"""The completion messages of the mail data pages (copy from another server, its job page, purge), as msgids (see messages.py)."""

from collections.abc import Mapping

DONE: Mapping[str, str] = {}
"""key (the `done` of a redirect) -> msgid marked with messages.N_"""
