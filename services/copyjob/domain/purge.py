"""Mailbox purge: what goes and what stays. Every message that was there when the purge started
goes (its folder's UIDs below the UIDNEXT seen then, under the same UIDVALIDITY); INBOX and the
special-use folders stay, the user's own folders are removed once empty, children before parents.
Mail that arrives meanwhile takes a higher UID (or lands in a folder made since) and stays. Pure."""

from collections.abc import Iterator
from dataclasses import dataclass

from services.copyjob.domain.checkpoints import Mailbox
from services.copyjob.domain.folders import OUR_SEPARATOR, SPECIAL_USE


@dataclass(frozen=True)
class Listed:
    """A folder here as LIST shows it, with its STATUS when it can hold messages."""

    name: str
    attributes: frozenset[str]
    mailbox: Mailbox | None


@dataclass(frozen=True)
class PurgeFolder:
    name: str
    uidvalidity: int
    below_uid: int
    """messages with a UID below this were there at the start: they go"""
    messages: int
    remove: bool
    """a folder of the user's: removed once empty"""


def purge_plan(folders: list[Listed]) -> list[PurgeFolder]:
    return [PurgeFolder(name=f.name, uidvalidity=f.mailbox.uidvalidity if f.mailbox else 0,
                        below_uid=f.mailbox.uidnext if f.mailbox else 0, messages=f.mailbox.messages if f.mailbox else 0,
                        remove=not kept_folder(f))
            for f in folders]


def kept_folder(folder: Listed) -> bool:
    return folder.name.upper() == "INBOX" or bool(set(SPECIAL_USE) & folder.attributes)


def removal_order(names: list[str]) -> list[str]:
    """Children before their parents."""
    return sorted(names, key=lambda name: (-name.count(OUR_SEPARATOR), name))


def uid_sets(uids: list[int], size: int) -> Iterator[tuple[str, int]]:
    """IMAP sets of at most `size` UIDs each, in ranges (`4:9,12`) as short as the UIDs allow, with
    how many UIDs each names."""
    ordered = sorted(uids)
    for start in range(0, len(ordered), size):
        batch = ordered[start:start + size]
        yield _ranges(batch), len(batch)


def _ranges(uids: list[int]) -> str:
    parts, first = [], 0
    for index in range(1, len(uids) + 1):
        if index == len(uids) or uids[index] != uids[index - 1] + 1:
            parts.append(str(uids[first]) if first == index - 1 else f"{uids[first]}:{uids[index - 1]}")
            first = index
    return ",".join(parts)
