"""The copy workers: PlanCopy lists the source's folders, makes them here (with the subscriptions)
and records the plan, leaving out folders with nothing new since their checkpoint; CopyFolder copies
the next chunk of what a folder here lacks and records it with its checkpoint (the record enqueues
the next chunk). Both run on the kit's work queue (any number of worker processes), never in a
command's turn, and report back through the account's turn. A step redelivered after a crash adds
only what is missing (services/copyjob/domain/identity.py, checkpoints.py).
A refused login or an unreachable source fails the job at once; a connection lost mid-step is
retried with backoff and the step goes on from what is already there."""

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from services.copyjob.adapters.imap import ImapError, Session
from services.copyjob.adapters.kept_sessions import KeptSessions
from services.copyjob.adapters.ours import kept_ours
from services.copyjob.adapters.outside import FernetVault
from services.copyjob.adapters.stored_jobs import marks_of, running_job
from services.copyjob.domain.checkpoints import Mailbox, Mark, mark_key, next_chunk, up_to_date, view_from
from services.copyjob.domain.folders import SourceFolder, our_names
from services.copyjob.domain.identity import Summary, missing
from services.copyjob.domain.jobs import Job, folder_of
from services.copyjob.settings import CopyJobSettings
from shared.contracts.base import InternalCommand
from shared.contracts.copyjob import (
    CopyFolder,
    FolderMark,
    PlanCopy,
    PlannedFolder,
    RecordPlan,
    RecordProgress,
    RecordStep,
)
from shared.messaging.unit_of_work import Doc

log = logging.getLogger(__name__)

Peek = Callable[[str], Awaitable[Doc | None]]
Send = Callable[[InternalCommand], Awaitable[None]]
BATCH_MESSAGES = 50
BATCH_BYTES = 16 * 1024 * 1024
"""messages fetched together and appended together (one round trip each way); a look at whether the
job was cancelled between two batches"""
CANCEL_CHECK_S = 1.0
"""how often a step looks whether its job was cancelled (between two batches)"""
FAIL_AT_ONCE = {"source_login_refused", "source_tls_failed", "quota_exceeded"}
"""ends the job; anything else is retried with backoff (an unreachable source only ends it while planning:
once it has answered, a step that cannot reach it waits for it)"""


@dataclass
class Progress:
    """A step's progress reports: the first at once (GetJob knows the folder's total early), then
    at most one per `interval_s`."""

    send: Send
    interval_s: float
    address: str
    job_id: str
    folder: str
    source_folder: str
    recorded: int
    """done by the folder's earlier chunks"""
    total: int
    last: float = float("-inf")

    async def __call__(self, done: int) -> None:
        if time.monotonic() - self.last > self.interval_s:
            self.last = time.monotonic()
            await self.send(RecordProgress(address=self.address, job_id=self.job_id, folder=self.folder,
                                           source_folder=self.source_folder, copied=self.recorded + done, total=self.total))


@dataclass(frozen=True)
class Copier:
    peek: Peek
    send: Send
    vault: FernetVault
    settings: CopyJobSettings
    sessions: KeptSessions = field(default_factory=KeptSessions)

    async def plan(self, item: PlanCopy) -> None:
        doc = await self.peek(item.address)
        if (found := running_job(doc, item.job_id)) is None:
            return
        job, marks = found[0], marks_of(doc)
        try:
            async with self._source(item.address, *found) as source:
                folders = [f for f in await source.folders() if f.selectable]
                subscribed = await source.subscribed()
                names = our_names(folders)
                marked = {f.name: (mark, await source.status(f.name, raw=True)) for f, name in zip(folders, names, strict=True)
                          if (mark := marks.get(mark_key(job.source_host, job.source_port, f.name, name)))}
            async with self._target(item.address) as target:
                planned = [await self._planned(target, folder, name, folder.name in subscribed, marked.get(folder.name))
                           for folder, name in zip(folders, names, strict=True)]
        except ImapError as error:
            await self._failed(item.address, item.job_id, error, planning=True)
            return
        await self.send(RecordPlan(address=item.address, job_id=item.job_id, folders=planned))

    @staticmethod
    async def _planned(target: Session, folder: SourceFolder, name: str, subscribed: bool,
                       marked: tuple[Mark, Mailbox] | None) -> PlannedFolder:
        """Make the folder here (subscribed as at the source); up to date when its checkpoint says so."""
        if name != "INBOX":
            await target.create(name)
        if subscribed:
            await target.subscribe(name)
        fresh = marked is not None and up_to_date(marked[0], marked[1], await target.status(name))
        return PlannedFolder(name=name, source_name=folder.name, up_to_date=marked[1].messages if marked and fresh else None)

    async def copy_folder(self, item: CopyFolder) -> None:
        doc = await self.peek(item.address)
        if (found := running_job(doc, item.job_id)) is None:
            return
        job = found[0]
        folder = folder_of(job, item.source_folder)
        if folder is None or folder.state == "done" or folder.chunks > item.chunk:
            return  # recorded before: a redelivery after the record
        mark = marks_of(doc).get(mark_key(job.source_host, job.source_port, item.source_folder, item.folder))
        try:
            async with self._source(item.address, *found) as source, self._target(item.address) as target:
                record = await self._copy(item, folder.copied, mark, source, target)
        except ImapError as error:
            await self._failed(item.address, item.job_id, error)
            return
        if record is not None:
            await self.send(record)

    async def _copy(self, item: CopyFolder, recorded: int, mark: Mark | None, source: Session,
                    target: Session) -> RecordStep | None:
        """The next chunk of the folder: compare the two sides' views, copy the head of what is
        missing, and return the record with the new checkpoint (None: cancelled meanwhile)."""
        there_box = await source.select(item.source_folder, raw=True, readonly=True)
        view = view_from(mark, there_box, await target.select(item.folder))
        there = await source.summaries(view.source_after + 1)
        todo = missing(there, await target.summaries(view.target_since))
        chunk = next_chunk(there, todo, there_box, max_messages=self.settings.chunk_messages,
                           max_bytes=self.settings.chunk_bytes, max_message_bytes=self.settings.max_message_bytes)
        covered = max(0, there_box.messages - len(there)) if item.chunk == 0 else 0  # an earlier job's mark
        report = Progress(self.send, self.settings.progress_interval_s, item.address, item.job_id, item.folder,
                          item.source_folder, recorded, recorded + len(todo))
        copied_bytes = await self._transfer(item, chunk.wanted, source, target, report)
        if copied_bytes is None:
            return None
        here_box = await target.select(item.folder, readonly=True)
        return RecordStep(address=item.address, job_id=item.job_id, folder=item.folder, source_folder=item.source_folder,
                          chunk=item.chunk, more=chunk.more, copied=len(chunk.wanted), already_there=covered + chunk.already_there,
                          copied_bytes=copied_bytes, too_big=[f"{item.folder}#{m.uid} ({m.size} bytes)" for m in chunk.too_big],
                          flags_dropped=sum(m.flags_dropped for m in chunk.wanted),
                          mark=FolderMark(source_uidvalidity=there_box.uidvalidity, source_uidnext=there_box.uidnext,
                                          source_after=chunk.source_after, target_uidvalidity=here_box.uidvalidity,
                                          target_uidnext=here_box.uidnext, target_messages=here_box.messages))

    async def _transfer(self, item: CopyFolder, wanted: list[Summary], source: Session, target: Session,
                        report: "Progress") -> int | None:
        """Batches, each fetched while the one before is appended; the bytes copied, or None when
        the job was cancelled (what was copied stays)."""
        batches, copied, copied_bytes, looked = list(_batches(wanted)), 0, 0, time.monotonic()
        fetching = asyncio.ensure_future(source.bodies([m.uid for m in batches[0]])) if batches else None
        try:
            for number, batch in enumerate(batches):
                assert fetching is not None
                bodies = await fetching
                fetching = (asyncio.ensure_future(source.bodies([m.uid for m in batches[number + 1]]))
                            if number + 1 < len(batches) else None)
                if time.monotonic() - looked > CANCEL_CHECK_S:
                    looked = time.monotonic()
                    if await self._cancelled(item):
                        if fetching is not None:
                            await fetching  # its answer read in full: the session can be kept
                        return None
                await report(copied)
                present = [m for m in batch if m.uid in bodies]  # gone from the source meanwhile: nothing to copy
                await target.append_many(item.folder, [(bodies[m.uid], m.flags, m.internaldate) for m in present])
                copied, copied_bytes = copied + len(present), copied_bytes + sum(len(bodies[m.uid]) for m in present)
        finally:
            if fetching is not None:
                fetching.cancel()
                with contextlib.suppress(BaseException):
                    await fetching
        return copied_bytes

    async def _cancelled(self, item: CopyFolder) -> bool:
        """The job ended meanwhile (cancelled, or the account went)."""
        return running_job(await self.peek(item.address), item.job_id) is None

    async def _failed(self, address: str, job_id: str, error: ImapError, *, planning: bool = False) -> None:
        if error.category not in FAIL_AT_ONCE and not (planning and error.category == "source_unreachable"):
            raise ConnectionError(f"{error.category}: {error}")  # the kit retries with backoff
        log.info("copy job %s failed: %s", job_id, error.category)
        await self.send(RecordStep(address=address, job_id=job_id, folder="", failure=error.category))

    def _source(self, address: str, job: Job, sealed: str, addresses: list[str]) -> AbstractAsyncContextManager[Session]:
        return self.sessions.session(("source", job.id), lambda: self._open_source(address, job, sealed, addresses))

    def _target(self, address: str) -> AbstractAsyncContextManager[Session]:
        return kept_ours(self.sessions, self.settings, address)

    async def _open_source(self, address: str, job: Job, sealed: str, addresses: list[str]) -> Session:
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
