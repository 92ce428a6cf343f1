"""The copy workers: PlanCopy lists the source's folders, makes them here (with the subscriptions)
and records the plan; CopyFolder copies what a folder here lacks. Both run on the kit's work queue
(any number of worker processes), never in a command's turn, and report back through the account's
turn. A step redelivered after a crash adds only what is missing (services/copyjob/domain/identity.py).
A refused login or an unreachable source fails the job at once; a connection lost mid-step is
retried with backoff and the step goes on from what is already there."""

import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from services.copyjob.adapters.imap import ImapError, Session
from services.copyjob.adapters.outside import FernetVault
from services.copyjob.adapters.stored_jobs import running_job
from services.copyjob.domain.folders import our_name
from services.copyjob.domain.identity import Summary, missing
from services.copyjob.domain.jobs import Job
from services.copyjob.settings import CopyJobSettings
from shared.contracts.copyjob import CopyFolder, PlanCopy, RecordPlan, RecordProgress, RecordStep
from shared.messaging.unit_of_work import Doc

log = logging.getLogger(__name__)

Peek = Callable[[str], Awaitable[Doc | None]]
Send = Callable[[RecordPlan | RecordStep | RecordProgress], Awaitable[None]]
BATCH_MESSAGES = 50
BATCH_BYTES = 16 * 1024 * 1024
"""messages fetched together and appended together (one round trip each way); a look at whether the
job was cancelled between two batches"""
FAIL_AT_ONCE = {"source_login_refused", "source_tls_failed", "quota_exceeded"}
"""ends the job; anything else is retried with backoff (an unreachable source only ends it while planning:
once it has answered, a step that cannot reach it waits for it)"""


@dataclass(frozen=True)
class Copier:
    peek: Peek
    send: Send
    vault: FernetVault
    settings: CopyJobSettings

    async def plan(self, item: PlanCopy) -> None:
        if (found := running_job(await self.peek(item.address), item.job_id)) is None:
            return
        try:
            source = await self._source(item.address, *found)
            try:
                folders = [f for f in await source.folders() if f.selectable]
                subscribed = await source.subscribed()
            finally:
                await source.close()
            target = await self._target(item.address)
            try:
                for folder in folders:
                    if (name := our_name(folder)) != "INBOX":
                        await target.create(name)
                    if folder.name in subscribed:
                        await target.subscribe(name)
            finally:
                await target.close()
        except ImapError as error:
            await self._failed(item.address, item.job_id, error, planning=True)
            return
        await self.send(RecordPlan(address=item.address, job_id=item.job_id, folders=[our_name(f) for f in folders],
                                   source_folders=[f.name for f in folders]))

    async def copy_folder(self, item: CopyFolder) -> None:
        if (found := running_job(await self.peek(item.address), item.job_id)) is None:
            return
        try:
            source = await self._source(item.address, *found)
            target = await self._target(item.address)
            try:
                record = await self._copy(item, source, target)
            finally:
                await source.close()
                await target.close()
        except ImapError as error:
            await self._failed(item.address, item.job_id, error)
            return
        if record is not None:
            await self.send(record)

    async def _copy(self, item: CopyFolder, source: Session, target: Session) -> RecordStep | None:
        await source.select(item.source_folder, raw=True, readonly=True)
        await target.select(item.folder)
        there = await source.summaries()
        todo = missing(there, await target.summaries())
        copied = copied_bytes = 0
        too_big = [f"{item.folder}#{m.uid} ({m.size} bytes)" for m in todo if m.size > self.settings.max_message_bytes]
        wanted = [m for m in todo if m.size <= self.settings.max_message_bytes]
        reported = float("-inf")  # the first batch reports at once: GetJob knows the folder's total early
        for batch in _batches(wanted):
            if copied and running_job(await self.peek(item.address), item.job_id) is None:
                return None  # cancelled (or the account went): what was copied stays
            if time.monotonic() - reported > self.settings.progress_interval_s:
                reported = time.monotonic()
                await self.send(RecordProgress(address=item.address, job_id=item.job_id, folder=item.folder,
                                               copied=copied, total=len(wanted)))
            bodies = await source.bodies([m.uid for m in batch])
            present = [m for m in batch if m.uid in bodies]  # gone from the source meanwhile: nothing to copy
            await target.append_many(item.folder, [(bodies[m.uid], m.flags, m.internaldate) for m in present])
            copied, copied_bytes = copied + len(present), copied_bytes + sum(len(bodies[m.uid]) for m in present)
        return RecordStep(address=item.address, job_id=item.job_id, folder=item.folder, copied=copied,
                          already_there=len(there) - len(todo), copied_bytes=copied_bytes, too_big=too_big)

    async def _failed(self, address: str, job_id: str, error: ImapError, *, planning: bool = False) -> None:
        if error.category not in FAIL_AT_ONCE and not (planning and error.category == "source_unreachable"):
            raise ConnectionError(f"{error.category}: {error}")  # the kit retries with backoff
        log.info("copy job %s failed: %s", job_id, error.category)
        await self.send(RecordStep(address=address, job_id=job_id, folder="", failure=error.category))

    async def _source(self, address: str, job: Job, sealed: str, addresses: list[str]) -> Session:
        tls = None if job.source_security == "plain" else self._tls()
        if tls is None and not self.settings.allow_plain_sources:
            raise ImapError("source_tls_failed", "plain IMAP to a source is not allowed here")
        last: ImapError | None = None
        for checked in addresses:  # only the addresses checked when the job was accepted
            try:
                return await Session.open(checked, job.source_port, tls=tls, server_hostname=job.source_host if tls else None,
                                          user=address, password=self.vault.open(sealed), timeout=self.settings.source_timeout_s,
                                          starttls=job.source_security == "starttls")
            except ImapError as error:
                if error.category != "source_unreachable":
                    raise
                last = error
        raise last or ImapError("source_unreachable", "no address to connect to")

    async def _target(self, address: str) -> Session:
        settings = self.settings
        try:
            return await Session.open(settings.dovecot_imap_host, settings.dovecot_imap_port, tls=None, server_hostname=None,
                                      user=f"{address}*{settings.dovecot_master_user}",
                                      password=settings.dovecot_master_password.get_secret_value())
        except ImapError as error:
            raise ConnectionError(f"our Dovecot: {error.category}") from None

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.settings.source_ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def _batches(messages: list[Summary]) -> Iterator[list[Summary]]:
    batch: list[Summary] = []
    size = 0
    for message in messages:
        if batch and (len(batch) >= BATCH_MESSAGES or size + message.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += message.size
    if batch:
        yield batch
