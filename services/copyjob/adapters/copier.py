"""The copy workers: PlanCopy lists the source's folders, makes them here (with the subscriptions)
and records the plan, leaving out folders with nothing new since their checkpoint; CopyFolder copies
the next chunk of what a folder here lacks and records it with its checkpoint (the record enqueues
the next chunk). Both run on the kit's work queue (any number of worker processes), never in a
command's turn, and report back through the account's turn. A step redelivered after a crash adds
only what is missing (services/copyjob/domain/identity.py, checkpoints.py).
A refused login or an unreachable source fails the job at once; a connection lost or an answer
standing still mid-step is tried again (a bounded number of times, within the step's deadline) from
what is already there, and then fails the job with that reason; a folder our server or the source
refuses is left out and listed, the others go on."""

import asyncio
import contextlib
import logging
import ssl
import time
import typing
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from services.copyjob.adapters.imap import ImapError, Session
from services.copyjob.adapters.kept_sessions import KeptSessions
from services.copyjob.adapters.ours import kept_ours
from services.copyjob.adapters.outside import FernetVault
from services.copyjob.adapters.stored_jobs import marks_of, running_job
from services.copyjob.domain.checkpoints import Mailbox, Mark, mark_key, next_chunk, up_to_date, view_from
from services.copyjob.domain.folders import SourceFolder, our_names, renamed
from services.copyjob.domain.identity import Summary, missing
from services.copyjob.domain.jobs import Job, folder_of
from services.copyjob.settings import CopyJobSettings
from shared.contracts.base import InternalCommand
from shared.contracts.copyjob import (
    CopyFolder,
    FailureReason,
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
FAIL_AT_ONCE = {"source_login_refused", "source_tls_failed", "quota_exceeded", "too_many_folders", "byte_limit"}
"""ends the job; anything else is tried again, a bounded number of times (an unreachable source ends
it at once only while planning: once it has answered, a step that cannot reach it waits a while)"""
SKIP_FOLDER = {"refused_here", "refused_at_source"}
"""leaves the folder out; the others go on"""
FAILED_AS = {"connection_lost": "source_unreachable"}
"""what a step that never got over an error fails the job with (a category that is no FailureReason: internal)"""
T = typing.TypeVar("T")


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
        try:
            planned = await self._tries(lambda _: self._plan(item.address, found, marks_of(doc)),
                                        final=FAIL_AT_ONCE | {"source_unreachable"})
        except ImapError as error:
            await self._failed(item.address, item.job_id, error)
            return
        await self.send(RecordPlan(address=item.address, job_id=item.job_id, folders=planned))

    async def _plan(self, address: str, found: tuple[Job, str, list[str]], marks: dict[str, Mark]) -> list[PlannedFolder]:
        job = found[0]
        async with self._source(address, *found) as source:
            folders = [f for f in await source.folders() if f.selectable]
            if len(folders) > self.settings.max_folders:
                raise ImapError("too_many_folders", f"{len(folders)} folders", limit=self.settings.max_folders)
            subscribed = await source.subscribed()
            names = our_names(folders)
            marked = {f.name: (mark, await source.status(f.name, raw=True)) for f, name in zip(folders, names, strict=True)
                      if (mark := marks.get(mark_key(job.source_host, job.source_port, f.name, name)))}
        async with self._target(address) as target:
            return [await self._planned(target, folder, name, folder.name in subscribed, marked.get(folder.name))
                    for folder, name in zip(folders, names, strict=True)]

    @staticmethod
    async def _planned(target: Session, folder: SourceFolder, name: str, subscribed: bool,
                       marked: tuple[Mark, Mailbox] | None) -> PlannedFolder:
        """Make the folder here (subscribed as at the source); up to date when its checkpoint says so;
        left out when our server refuses it."""
        planned = PlannedFolder(name=name, source_name=folder.name, renamed=renamed(folder, name))
        try:
            if name != "INBOX":
                await target.create(name)
        except ImapError as error:
            if error.category not in SKIP_FOLDER:
                raise
            log.info("folder left out: %s", error)
            return planned.model_copy(update={"skipped": error.category})
        if subscribed:
            await target.subscribe(name)
        fresh = marked is not None and up_to_date(marked[0], marked[1], await target.status(name))
        return planned.model_copy(update={"up_to_date": marked[1].messages if marked and fresh else None})

    async def copy_folder(self, item: CopyFolder) -> None:
        doc = await self.peek(item.address)
        if (found := running_job(doc, item.job_id)) is None:
            return
        job = found[0]
        folder = folder_of(job, item.source_folder)
        if folder is None or folder.state == "done" or folder.chunks > item.chunk:
            return  # recorded before: a redelivery after the record
        mark = marks_of(doc).get(mark_key(job.source_host, job.source_port, item.source_folder, item.folder))
        room = self.settings.job_max_bytes - job.totals()["copied_bytes"]

        async def step(deadline: float) -> RecordStep | None:
            wrap_up_at = deadline - self.settings.step_deadline_s / 4  # a slow source's chunk ends early, never fails
            async with self._source(item.address, *found) as source, self._target(item.address) as target:
                return await self._copy(item, folder.copied, mark, room, source, target, wrap_up_at)

        try:
            record = await self._tries(step)
        except ImapError as error:
            await self._failed(item.address, item.job_id, error, item)
            return
        if record is not None:
            await self.send(record)

    async def _copy(self, item: CopyFolder, recorded: int, mark: Mark | None, room: int, source: Session,
                    target: Session, wrap_up_at: float) -> RecordStep | None:
        """The next chunk of the folder: compare the two sides' views, copy the head of what is
        missing (within the `room` the job's byte limit leaves), and return the record with the new
        checkpoint (None: cancelled meanwhile). A chunk still going at `wrap_up_at` ends after its
        batch in hand and is recorded without a checkpoint: the next chunk compares from the last one
        and finds the rest (a mark is only a shortcut), messages our server refused among it too, which
        it names then (named here, they would be named twice)."""
        there_box = await source.select(item.source_folder, raw=True, readonly=True, refused="refused_at_source")
        view = view_from(mark, there_box, await target.select(item.folder, refused="refused_here"))
        there = await source.summaries(view.source_after + 1)
        todo = missing(there, await target.summaries(view.target_since))
        if todo and room <= 0:
            raise ImapError("byte_limit", "the job's byte limit is reached", limit=self.settings.job_max_bytes)
        chunk = next_chunk(there, todo, there_box, max_messages=self.settings.chunk_messages,
                           max_bytes=min(self.settings.chunk_bytes, room), max_message_bytes=self.settings.max_message_bytes)
        covered = max(0, there_box.messages - len(there)) if item.chunk == 0 else 0  # an earlier job's mark
        report = Progress(self.send, self.settings.progress_interval_s, item.address, item.job_id, item.folder,
                          item.source_folder, recorded, recorded + len(todo))
        moved = await self._transfer(item, chunk.wanted, source, target, report, wrap_up_at)
        if moved is None:
            return None
        if not moved.whole:
            log.info("copy job %s: %s wrapped up after %d messages (a slow source)", item.job_id, item.folder, moved.copied)
            return RecordStep(address=item.address, job_id=item.job_id, folder=item.folder, source_folder=item.source_folder,
                              chunk=item.chunk, more=True, copied=moved.copied, already_there=covered,
                              copied_bytes=moved.copied_bytes, flags_dropped=moved.flags_dropped)
        here_box = await target.select(item.folder, readonly=True)
        return RecordStep(address=item.address, job_id=item.job_id, folder=item.folder, source_folder=item.source_folder,
                          chunk=item.chunk, more=chunk.more, copied=moved.copied, already_there=covered + chunk.already_there,
                          copied_bytes=moved.copied_bytes, too_big=[f"{item.folder}#{m.uid} ({m.size} bytes)" for m in chunk.too_big],
                          refused=moved.refused, flags_dropped=moved.flags_dropped,
                          mark=FolderMark(source_uidvalidity=there_box.uidvalidity, source_uidnext=there_box.uidnext,
                                          source_after=chunk.source_after, target_uidvalidity=here_box.uidvalidity,
                                          target_uidnext=here_box.uidnext, target_messages=here_box.messages))

    async def _transfer(self, item: CopyFolder, wanted: list[Summary], source: Session, target: Session,
                        report: "Progress", wrap_up_at: float) -> "_Moved | None":
        """Batches, each fetched while the one before is appended, until all are or `wrap_up_at`
        has come (then not whole); None when the job was cancelled (what was copied stays)."""
        batches, moved, looked = list(_batches(wanted)), _Moved(), time.monotonic()
        loop = asyncio.get_running_loop()
        fetching = asyncio.ensure_future(_fetch(source, batches[0])) if batches else None
        try:
            for number, batch in enumerate(batches):
                assert fetching is not None
                bodies = await fetching
                more = number + 1 < len(batches)
                if more and loop.time() >= wrap_up_at:
                    moved.whole, more = False, False
                fetching = asyncio.ensure_future(_fetch(source, batches[number + 1])) if more else None
                if time.monotonic() - looked > CANCEL_CHECK_S:
                    looked = time.monotonic()
                    if await self._cancelled(item):
                        if fetching is not None:
                            await fetching  # its answer read in full: the session can be kept
                        return None
                await report(moved.copied)
                present = [m for m in batch if m.uid in bodies]  # gone from the source meanwhile: nothing to copy
                refused = await target.append_many(item.folder, [(bodies[m.uid], m.flags, m.internaldate) for m in present])
                stored = [m for position, m in enumerate(present) if position not in refused]
                moved.add(stored, sum(len(bodies[m.uid]) for m in stored))
                moved.refused += [f"{item.folder}#{present[p].uid} ({why or 'refused'})" for p, why in sorted(refused.items())]
                if not moved.whole:
                    break
        finally:
            if fetching is not None:
                fetching.cancel()
                with contextlib.suppress(BaseException):
                    await fetching
        return moved

    async def _cancelled(self, item: CopyFolder) -> bool:
        """The job ended meanwhile (cancelled, or the account went)."""
        return running_job(await self.peek(item.address), item.job_id) is None

    async def _tries(self, step: Callable[[float], Awaitable[T]], final: set[str] = FAIL_AT_ONCE | SKIP_FOLDER) -> T:
        """The step (given the deadline, in loop time), tried again from what is there after an error
        it may get over, at most `step_attempts` times within `step_deadline_s`; the last error is raised."""
        settings, loop = self.settings, asyncio.get_running_loop()
        deadline, pause = loop.time() + settings.step_deadline_s, settings.retry_pause_s
        for attempt in range(1, settings.step_attempts + 1):
            try:
                async with asyncio.timeout_at(deadline):
                    return await step(deadline)
            except TimeoutError:
                raise ImapError("source_stalled", f"the step took over {settings.step_deadline_s:g} s") from None
            except ImapError as error:
                if error.category in final or attempt == settings.step_attempts or loop.time() + pause >= deadline:
                    raise
                log.info("copy step: %s (%s); try %d of %d in %g s", error.category, error, attempt + 1,
                         settings.step_attempts, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 60.0)
        raise AssertionError("unreachable")

    async def _failed(self, address: str, job_id: str, error: ImapError, item: CopyFolder | None = None) -> None:
        """The folder left out (a refusal), or the job failed with the error's reason."""
        if item is not None and error.category in SKIP_FOLDER:
            log.info("copy job %s: folder left out (%s): %s", job_id, error.category, error)
            await self.send(RecordStep(address=address, job_id=job_id, folder=item.folder, source_folder=item.source_folder,
                                       chunk=item.chunk, skipped=typing.cast(typing.Any, error.category)))
            return
        reason = FAILED_AS.get(error.category, error.category)
        if reason not in typing.get_args(FailureReason):
            reason = "internal"
        log.info("copy job %s failed: %s (%s)", job_id, reason, error)
        await self.send(RecordStep(address=address, job_id=job_id, folder="", failure=typing.cast(FailureReason, reason),
                                   limit=error.limit))

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
                                          starttls=job.source_security == "starttls", max_literal=self._largest_literal())
            except ImapError as error:
                if error.category != "source_unreachable":
                    raise
                last = error
        raise last or ImapError("source_unreachable", "no address to connect to")

    def _largest_literal(self) -> int:
        """A message at the size limit, with room for line ends counted otherwise than in its size."""
        return self.settings.max_message_bytes + self.settings.max_message_bytes // 8 + 65536

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.settings.source_ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


@dataclass
class _Moved:
    """What a chunk's transfer copied, and whether it went through all of the chunk."""

    copied: int = 0
    copied_bytes: int = 0
    flags_dropped: int = 0
    whole: bool = True
    refused: list[str] = field(default_factory=list)
    """folder#UID (why) of the messages our mail server would not store, left out"""

    def add(self, messages: list[Summary], size: int) -> None:
        self.copied += len(messages)
        self.copied_bytes += size
        self.flags_dropped += sum(m.flags_dropped for m in messages)


async def _fetch(source: Session, batch: list[Summary]) -> dict[int, bytes]:
    return await source.bodies([m.uid for m in batch], sum(m.size for m in batch))


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
