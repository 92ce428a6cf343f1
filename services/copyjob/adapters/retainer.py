"""The retention pass of one account, on the work queue: INBOX mail saved before the cut-off moves
to Archive (MOVE; a pass cut off between MOVE's copy and its expunge is finished, not repeated, by
the next attempt: neither a duplicate nor a gap), Trash mail saved before its cut-off is expunged.
By IMAP SAVEDATE (RFC 8514), never INTERNALDATE. Also the sweep that finds the passes due."""

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.copyjob.adapters.copier import Peek, Send
from services.copyjob.adapters.imap import ImapError, Session
from services.copyjob.adapters.kept_sessions import KeptSessions
from services.copyjob.adapters.ours import kept_ours
from services.copyjob.adapters.stored_jobs import job_of
from services.copyjob.domain.purge import uid_sets
from services.copyjob.domain.retention import PLANS, applies, cutoffs, due, imap_date, period_of
from services.copyjob.settings import CopyJobSettings
from shared.contracts.copyjob import DueRetention, RecordRetention, RetainMailbox
from shared.messaging.unit_of_work import Doc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retainer:
    peek: Peek
    send: Send
    settings: CopyJobSettings
    sessions: KeptSessions

    async def __call__(self, item: RetainMailbox) -> None:
        doc = await self.peek(item.address) or {}
        if not applies(doc.get("plan")):
            return
        if (current := doc.get("current")) and job_of(current).purging:
            raise ConnectionError("a purge runs: the pass waits for its end")  # retried with backoff
        log.info("retention pass %s of period %d begins", item.message_id, item.period)
        try:
            async with kept_ours(self.sessions, self.settings, item.address) as ours:
                archived, expunged = await retention_pass(ours, item.as_of, self.settings.retention_batch)
        except ImapError as error:  # our Dovecot's: the pass is retried (it finishes what an attempt left)
            raise ConnectionError(f"retention pass: {error.category}") from None
        await self.send(RecordRetention(address=item.address, period=item.period, as_of=item.as_of,
                                        archived=archived, expunged=expunged))



async def retention_pass(ours: Session, as_of: datetime, batch: int, today: date | None = None) -> tuple[int, int]:
    """-> (moved to Archive, expunged from Trash), `batch` messages per command."""
    cut = cutoffs(as_of)
    for folder in ("Archive", "Trash"):
        await ours.create(folder)
    await ours.select("INBOX")
    due = await ours.uids("SAVEDBEFORE", imap_date(cut.inbox))
    copied_before = await _copied_by_a_cut_off_move(ours, due, today or datetime.now(UTC).date())
    for uid_set, _ in uid_sets(copied_before, batch):
        await ours.expunge(uid_set)
    archived = len(copied_before)
    for uid_set, count in uid_sets(sorted(set(due) - set(copied_before)), batch):
        await ours.move(uid_set, "Archive")
        archived += count
    await ours.select("Trash")
    expunged = 0
    for uid_set, count in uid_sets(await ours.uids("SAVEDBEFORE", imap_date(cut.trash)), batch):
        await ours.expunge(uid_set)
        expunged += count
    return archived, expunged


async def _copied_by_a_cut_off_move(ours: Session, due: list[int], today: date) -> list[int]:
    """Dovecot's MOVE copies, then expunges: a pass cut off in between (a worker killed) leaves the
    messages in both folders. Those of `due` (INBOX, selected) that have their copy among the
    messages saved into Archive since yesterday go from INBOX instead of moving a second time
    (matched as the copy job matches: date, size and identifying fields, counted)."""
    if not due:
        return []
    await ours.select("Archive", readonly=True)
    recent = await ours.uids("SAVEDSINCE", imap_date(today - timedelta(days=1)))
    copies = Counter(s.key for s in await ours.summaries_of(recent)) if recent else Counter()
    await ours.select("INBOX")
    if not copies:
        return []
    found = []
    for message in await ours.summaries_of(due):
        if copies[message.key] > 0:
            copies[message.key] -= 1
            found.append(message.uid)
    return found


def retention_sweep(every: Callable[[Doc], Awaitable[dict[str, Doc]]], settings: CopyJobSettings,
                    clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Callable[[], Awaitable[list[DueRetention]]]:
    """The accounts whose pass of this period is due (any instance may ask: the account's turn
    queues it once)."""

    async def due_now() -> list[DueRetention]:
        now = clock()
        period = period_of(now, settings.retention_period_s)
        as_of = now + timedelta(days=settings.retention_clock_shift_days)
        found = await every({"plan": {"$in": list(PLANS)}})
        return [DueRetention(address=address, period=period, as_of=as_of) for address, doc in found.items()
                if due(address, now, settings.retention_period_s, settings.retention_spread_s,
                       (doc.get("retention") or {}).get("queued_period"))]

    return due_now
