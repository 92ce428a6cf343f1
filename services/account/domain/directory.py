"""A domain's directory: the lines the account list shows, sorted by address, kept in chunks of a few
dozen lines so that any page costs a few chunk reads, however deep it is. Pure; no I/O.

FerretDB serves only an exact `_id` lookup from an index (any other filter, `_id` ranges included,
decodes the whole collection), and the accounts' `_id` is the address, where a domain is a suffix.
So a domain's index names its chunks by their lower bounds, and every chunk is one document, read
and written by `_id`. A chunk's lines are those between its bound and the next; a reader keeps to
that range, so a document left behind by an interrupted change never shows twice.
"""

import base64
import binascii
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from services.account.domain.account import RuleBroken

MAX_LINES = 128
"""a chunk above this is split"""
MIN_LINES = 32
"""a chunk below this joins a neighbour"""
FILL_LINES = 96
"""how full a chunk is made (a build, a split, a join): room to grow before the next split"""
MIN_PAGE, MAX_PAGE = 1, 100
PREFIX_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._+-@")

State = Literal["active", "deleting"]


@dataclass(frozen=True)
class Line:
    address: str
    plan: str | None
    """None only for an account found half-deleted by a build (its tombstone keeps no plan)"""
    quota_mb: int | None
    comment: str
    created_at: datetime | None
    """None for an account made before creation times were kept"""
    state: State
    version: int
    """the version of the account's document this line shows: an older one never replaces it"""

    def shown(self) -> dict[str, Any]:
        return {"address": self.address, "plan": self.plan, "quota_mb": self.quota_mb, "comment": self.comment,
                "created_at": self.created_at.isoformat() if self.created_at else None, "state": self.state}


@dataclass(frozen=True)
class Gone:
    """The account left the domain's directory (its deletion is complete)."""

    address: str
    version: int


Change = Line | Gone


def applied(lines: Sequence[Line], change: Change) -> tuple[Line, ...]:
    """`lines` (sorted) with `change` made, unless a newer line of the address is kept already."""
    kept = {line.address: line for line in lines}
    current = kept.get(change.address)
    if current is not None and current.version > change.version:
        return tuple(lines)
    if isinstance(change, Gone):
        kept.pop(change.address, None)
    else:
        known_since = change.created_at or (current.created_at if current else None)
        kept[change.address] = replace(change, created_at=known_since)
    return tuple(sorted(kept.values(), key=lambda line: line.address))


@dataclass(frozen=True)
class Index:
    """A domain's chunks in address order, as (lower bound, chunk id): chunk n holds the addresses from
    its bound up to the next chunk's; the first bound is "" (below every address)."""

    chunks: tuple[tuple[str, str], ...]

    def position(self, address: str) -> int:
        return max(0, bisect_right([bound for bound, _ in self.chunks], address) - 1)

    def chunk_id(self, position: int) -> str:
        return self.chunks[position][1]

    def within(self, position: int, lines: Iterable[Line]) -> tuple[Line, ...]:
        """The lines that are this chunk's by the index (a chunk document may hold more: see the module)."""
        low = self.chunks[position][0]
        high = self.chunks[position + 1][0] if position + 1 < len(self.chunks) else None
        return tuple(line for line in lines if line.address >= low and (high is None or line.address < high))


@dataclass(frozen=True)
class Rewrite:
    """What a change does to the documents, in the order that keeps every read right in between: the
    new chunks, then the index naming them (None: unchanged), then the chunks it no longer names."""

    chunks: tuple[tuple[str, tuple[Line, ...]], ...]
    index: Index | None = None
    dropped: tuple[str, ...] = ()


def pieces(lines: Sequence[Line]) -> list[tuple[Line, ...]]:
    """`lines` in chunks of about FILL_LINES each (one, empty, for no lines)."""
    count = max(1, math.ceil(len(lines) / FILL_LINES))
    return [tuple(lines[n * len(lines) // count:(n + 1) * len(lines) // count]) for n in range(count)]


def built(lines: Sequence[Line], new_ids: Iterable[str]) -> Rewrite:
    """A whole directory of `lines` (sorted), as a build writes it."""
    ids = iter(new_ids)
    made = tuple((next(ids), part) for part in pieces(lines))
    bounds = ["", *(part[0].address for _, part in made[1:])]
    return Rewrite(chunks=made, index=Index(tuple(zip(bounds, (chunk_id for chunk_id, _ in made), strict=True))))


def neighbour(index: Index, position: int, size: int) -> int | None:
    """The chunk a chunk of `size` lines joins (the next, or for the last the one before), if any."""
    if size >= MIN_LINES or len(index.chunks) == 1:
        return None
    return position + 1 if position + 1 < len(index.chunks) else position - 1


def rewritten(index: Index, first: int, lines: Sequence[Line], new_ids: Iterable[str], *, span: int = 1) -> Rewrite:
    """The rewrite after the chunks first..first+span-1 came to hold `lines` (sorted): in place when one
    chunk stays within its bounds, else re-cut into new chunks."""
    if span == 1 and (len(lines) <= MAX_LINES and (len(lines) >= MIN_LINES or len(index.chunks) == 1)):
        return Rewrite(chunks=((index.chunk_id(first), tuple(lines)),))
    parts = pieces(lines)
    ids = iter(new_ids)
    made = tuple((next(ids), part) for part in parts)
    bounds = [index.chunks[first][0], *(part[0].address for part in parts[1:])]
    replaced = index.chunks[first:first + span]
    chunks = (*index.chunks[:first], *zip(bounds, (chunk_id for chunk_id, _ in made), strict=True),
              *index.chunks[first + span:])
    return Rewrite(chunks=made, index=Index(tuple(chunks)), dropped=tuple(chunk_id for _, chunk_id in replaced))


def take(lines: Iterable[Line], *, after: str, prefix: str, room: int) -> tuple[list[Line], bool]:
    """Up to `room` lines past `after` that start with `prefix`, and whether the list ends here (a line
    past the prefix's range was seen)."""
    taken: list[Line] = []
    for line in lines:
        if line.address <= after or line.address < prefix:
            continue
        if not line.address.startswith(prefix):
            return taken, True
        taken.append(line)
        if len(taken) == room:
            break
    return taken, False


# ------------------------------------------------------------------ what a list asks for


def cursor_after(domain: str, address: str) -> str:
    """Where the next page starts, bound to its domain: opaque to the client, and checked on return."""
    return base64.urlsafe_b64encode(f"{domain} {address}".encode()).decode().rstrip("=")


def address_after(cursor: str | None, domain: str) -> str:
    """The address a cursor continues after ("" for none); RuleBroken unless it is one this list gave
    for `domain`: a cursor never leads out of the domain it was asked for."""
    if cursor is None:
        return ""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    named, _, address = text.partition(" ")
    if named != domain or not address.endswith("@" + domain) or len(address) > 254:
        raise RuleBroken(field="after", code="invalid_cursor",
                         message=f"this is not a cursor the list of {domain} gave; start from the first page")
    return address


def check_prefix(prefix: str, domain: str) -> str:
    """The prefix as addresses are kept (lower case); RuleBroken when no address of `domain` could start so."""
    wanted = prefix.strip().lower()
    if not wanted.isascii() or not set(wanted) <= PREFIX_CHARACTERS:
        raise RuleBroken(field="prefix", code="invalid_characters",
                         message="a search may contain only a-z, 0-9, . _ + - and @", characters="a-z 0-9 . _ + - @")
    local, at, rest = wanted.partition("@")
    if at and not domain.startswith(rest):
        raise RuleBroken(field="prefix", code="other_domain",
                         message=f"the search must be an address of {domain} or the start of one", domain=domain)
    if len(local) > 64:
        raise RuleBroken(field="prefix", code="too_long", message="the part before @ is at most 64 characters",
                         max_length=64)
    return wanted


def check_page_size(limit: int) -> None:
    if not MIN_PAGE <= limit <= MAX_PAGE:
        raise RuleBroken(field="limit", code="page_size",
                         message=f"a page holds {MIN_PAGE}..{MAX_PAGE} accounts", min=MIN_PAGE, max=MAX_PAGE)
