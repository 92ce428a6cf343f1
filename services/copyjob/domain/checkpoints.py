"""How far a source folder has been copied into its folder here, kept across jobs, so that a step
compares only what is new on either side, a re-run with nothing new opens no folder, and a big
folder is copied in chunks that each end with a checkpoint. A mark is only a shortcut: without it
(lost, or a UIDVALIDITY changed, or a message removed here since) a step compares both folders
whole, and still adds only what is missing (identity.py). Pure."""

from dataclasses import dataclass
from hashlib import sha256

from services.copyjob.domain.identity import Summary


@dataclass(frozen=True)
class Mailbox:
    """What SELECT or STATUS tells of a folder."""

    uidvalidity: int
    uidnext: int
    messages: int


@dataclass(frozen=True)
class Mark:
    source_uidvalidity: int
    source_uidnext: int
    source_after: int
    """every source message up to this UID is here"""
    target_uidvalidity: int
    target_uidnext: int
    target_messages: int


@dataclass(frozen=True)
class View:
    """The part of each side a step compares: source UIDs above `source_after`, our UIDs from
    `target_since` (what came here after the mark, e.g. a crashed attempt's appends)."""

    source_after: int = 0
    target_since: int = 1


WHOLE = View()


def mark_key(host: str, port: int, source_folder: str, folder: str) -> str:
    """A database-safe key (folder names may hold `.` and `$`)."""
    return sha256(f"{host}\0{port}\0{source_folder}\0{folder}".encode()).hexdigest()[:32]


def nothing_removed_here(mark: Mark, target: Mailbox) -> bool:
    """Every message here at the mark is still here: each message added since took a new UID, so
    the count grew by exactly as many UIDs as were given out."""
    return (target.uidvalidity == mark.target_uidvalidity
            and target.messages - mark.target_messages == target.uidnext - mark.target_uidnext)


def view_from(mark: Mark | None, source: Mailbox, target: Mailbox) -> View:
    if mark is None or source.uidvalidity != mark.source_uidvalidity or not nothing_removed_here(mark, target):
        return WHOLE
    return View(mark.source_after, mark.target_uidnext)


def up_to_date(mark: Mark | None, source: Mailbox, target: Mailbox) -> bool:
    """Nothing new at the source since a complete copy, and nothing of it removed here."""
    return (mark is not None and view_from(mark, source, target) != WHOLE
            and source.uidnext == mark.source_uidnext and mark.source_after >= mark.source_uidnext - 1)


@dataclass(frozen=True)
class Chunk:
    """The next part of a folder's copy: at most so many messages and bytes, in source order."""

    wanted: list[Summary]
    too_big: list[Summary]
    already_there: int
    source_after: int
    more: bool


def next_chunk(view: list[Summary], todo: list[Summary], source: Mailbox, *, max_messages: int, max_bytes: int,
               max_message_bytes: int) -> Chunk:
    """`todo` is what `view` (source order) lacks here; the chunk takes its head and covers the
    source up to its last message, or up to the source's end when it takes all."""
    taken: list[Summary] = []
    size = 0
    for message in todo:
        fits = message.size > max_message_bytes or size + message.size <= max_bytes
        if taken and (len(taken) >= max_messages or not fits):
            break
        taken.append(message)
        size += 0 if message.size > max_message_bytes else message.size
    more = len(taken) < len(todo)
    after = taken[-1].uid if more else max([source.uidnext - 1, *(m.uid for m in view)])
    taken_uids = {m.uid for m in taken}
    return Chunk(wanted=[m for m in taken if m.size <= max_message_bytes],
                 too_big=[m for m in taken if m.size > max_message_bytes],
                 already_there=sum(1 for m in view if m.uid <= after and m.uid not in taken_uids),
                 source_after=after, more=more)
