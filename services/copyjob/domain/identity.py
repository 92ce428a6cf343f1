"""Which source messages a folder here still lacks. A message is known by what survives a copy:
its INTERNALDATE, its size, and a digest of its identifying header fields (Message-ID, Date, From,
Subject), counted as a multiset: a folder may hold the same message twice (it gets it twice), a
message may have no Message-ID, and two messages may share one with different content (their size
or other fields differ). So a re-run, a resumed step or a lost checkpoint adds only what is missing.
Pure."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

IDENTIFYING_FIELDS = "MESSAGE-ID DATE FROM SUBJECT"


@dataclass(frozen=True)
class Summary:
    uid: int
    internaldate: str
    size: int
    fields_digest: str
    flags: tuple[str, ...] = ()
    """valid flags only (domain/flags.py)"""
    flags_dropped: int = 0
    """what the source sent as flags that is none"""

    @property
    def key(self) -> tuple[str, int, str]:
        return self.internaldate, self.size, self.fields_digest


def missing(source: Iterable[Summary], here: Iterable[Summary]) -> list[Summary]:
    """The source messages to copy, in source order: each key as many times as the source has it
    more than this folder."""
    present = Counter(s.key for s in here)
    wanted = []
    for message in source:
        if present[message.key] > 0:
            present[message.key] -= 1
        else:
            wanted.append(message)
    return wanted
