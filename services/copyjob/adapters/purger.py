"""The purge's steps on the work queue: `plan` lists our folders and fixes, per folder, the UIDs
that go (below the UIDNEXT of the start, under its UIDVALIDITY); `empty` expunges those from one
folder, in batches, reporting progress; `remove` deletes the user's emptied folders, children
first. Each is idempotent, so a step redelivered after a crash (or retried while our Dovecot
restarts) goes on until the purge is done: a mailbox is never left half purged."""

from dataclasses import asdict, dataclass

from services.copyjob.adapters.copier import Peek, Progress, Send
from services.copyjob.adapters.imap import ImapError, Session
from services.copyjob.adapters.kept_sessions import KeptSessions
from services.copyjob.adapters.ours import kept_ours
from services.copyjob.adapters.stored_jobs import running
from services.copyjob.domain.folders import decode_mutf7
from services.copyjob.domain.jobs import Job, folder_of
from services.copyjob.domain.purge import Listed, purge_plan, removal_order, uid_sets
from services.copyjob.settings import CopyJobSettings
from shared.contracts.base import InternalCommand
from shared.contracts.copyjob import PurgePlanned, PurgeStep, RecordPurgePlan, RecordRemoved, RecordStep


@dataclass(frozen=True)
class Purger:
    peek: Peek
    send: Send
    settings: CopyJobSettings
    sessions: KeptSessions

    async def __call__(self, item: PurgeStep) -> None:
        if (job := running(await self.peek(item.address), item.job_id)) is None or job.kind != "purge":
            return
        steps = {"plan": self._plan, "empty": self._empty, "remove": self._remove}
        try:
            async with kept_ours(self.sessions, self.settings, item.address) as ours:
                record = await steps[item.step](item, job, ours)
        except ImapError as error:  # our Dovecot, never the user's doing: the step is retried until it passes
            raise ConnectionError(f"purge step {item.step}: {error.category}") from None
        if record is not None:
            await self.send(record)

    async def _plan(self, item: PurgeStep, job: Job, ours: Session) -> InternalCommand | None:
        if job.planned:
            return None
        listed = [Listed(f.name, f.attributes, await ours.status(f.name, raw=True) if f.selectable else None)
                  for f in await ours.folders()]
        return RecordPurgePlan(address=item.address, job_id=item.job_id,
                               folders=[PurgePlanned(**asdict(f)) for f in purge_plan(listed)])

    async def _empty(self, item: PurgeStep, job: Job, ours: Session) -> InternalCommand | None:
        planned = next((f for f in job.purge if f.name == item.folder), None)
        progress = folder_of(job, item.folder)
        if planned is None or progress is None or progress.state == "done":
            return None
        gone = 0
        if (await ours.select(planned.name, raw=True)).uidvalidity == planned.uidvalidity:  # else made anew since
            uids = await ours.uids("UID", f"1:{planned.below_uid - 1}")
            gone = planned.messages - len(uids)  # by an attempt before this one (or by the user meanwhile)
            report = Progress(self.send, self.settings.progress_interval_s, item.address, item.job_id, progress.name,
                              planned.name, 0, planned.messages)
            for uid_set, count in uid_sets(uids, self.settings.purge_batch):
                await report(gone)
                await ours.expunge(uid_set)
                gone += count
        return RecordStep(address=item.address, job_id=item.job_id, folder=progress.name, source_folder=planned.name,
                          copied=gone)

    async def _remove(self, item: PurgeStep, job: Job, ours: Session) -> InternalCommand | None:
        await ours.select("INBOX", readonly=True)  # Dovecot ends the session that deletes its selected folder
        existing = {f.name: f for f in await ours.folders()}
        planned = {f.name: f for f in job.purge if f.remove}
        removed, kept = [], []
        for name in removal_order(list(planned)):
            folder = existing.get(name)
            if folder is not None and folder.selectable:
                now = await ours.status(name, raw=True)
                if now.messages or now.uidvalidity != planned[name].uidvalidity:
                    kept.append(decode_mutf7(name))  # mail reached it meanwhile: it stays, with that mail
                    continue
            if folder is None or await ours.delete(name):  # gone already: an earlier attempt removed it
                removed.append(decode_mutf7(name))
            else:
                kept.append(decode_mutf7(name))
        return RecordRemoved(address=item.address, job_id=item.job_id, removed=removed, kept=kept)

