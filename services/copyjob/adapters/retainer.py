"""The retention pass of one account, on the work queue: INBOX mail saved before the cut-off moves
to Archive (MOVE: copied and expunged as one operation of the server's, so a pass interrupted and
run again neither duplicates nor loses a message), Trash mail saved before its cut-off is expunged.
By IMAP SAVEDATE (RFC 8514), never INTERNALDATE. Also the sweep that finds the passes due."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.copyjob.adapters.copier import Peek, Send
from services.copyjob.adapters.imap import Session
from services.copyjob.adapters.kept_sessions import KeptSessions
from services.copyjob.adapters.ours import open_ours
from services.copyjob.adapters.stored_jobs import job_of
from services.copyjob.domain.purge import uid_sets
from services.copyjob.domain.retention import PLANS, applies, cutoffs, due, imap_date, period_of
from services.copyjob.settings import CopyJobSettings
from shared.contracts.copyjob import DueRetention, RecordRetention, RetainMailbox
from shared.messaging.unit_of_work import Doc


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
        if (current := doc.get("current")) and job_of(current).running and job_of(current).kind == "purge":
            raise ConnectionError("a purge runs: the pass waits for its end")  # retried with backoff
        async with self.sessions.session(("target", item.address), lambda: open_ours(self.settings, item.address)) as ours:
            archived, expunged = await retention_pass(ours, item.as_of, self.settings.retention_batch)
        await self.send(RecordRetention(address=item.address, period=item.period, as_of=item.as_of,
                                        archived=archived, expunged=expunged))



async def retention_pass(ours: Session, as_of: datetime, batch: int) -> tuple[int, int]:
    """-> (moved to Archive, expunged from Trash), `batch` messages per command."""
    cut = cutoffs(as_of)
    for folder in ("Archive", "Trash"):
        await ours.create(folder)
    await ours.select("INBOX")
    archived = 0
    for uid_set, count in uid_sets(await ours.uids("SAVEDBEFORE", imap_date(cut.inbox)), batch):
        await ours.move(uid_set, "Archive")
        archived += count
    await ours.select("Trash")
    expunged = 0
    for uid_set, count in uid_sets(await ours.uids("SAVEDBEFORE", imap_date(cut.trash)), batch):
        await ours.expunge(uid_set)
        expunged += count
    return archived, expunged


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
