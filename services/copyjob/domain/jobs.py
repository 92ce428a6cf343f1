"""A mail copy job and its folders, and how it moves: running -> completed | failed | cancelled.
One job per account at a time; a folder is copied in one or more chunks, each recorded once however
often its step runs. Pure."""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from services.copyjob.domain.folders import decode_mutf7_or_raw
from services.copyjob.domain.purge import PurgeFolder

FolderState = Literal["pending", "done", "skipped"]
STARTING_FOR = timedelta(minutes=2)
"""a copy's start waits this long at most for its checks (the user's password, the source's
addresses) before another start may take its place"""
FINISHED = ("done", "skipped")
RECENT_JOBS = 5
MAX_NAMED_REFUSED = 100
"""messages our server refused, named per folder; beyond, only counted (the job document stays small)"""
"""finished jobs GetJob can still show per account"""


@dataclass(frozen=True)
class FolderProgress:
    name: str
    source_name: str
    state: FolderState = "pending"
    copied: int = 0
    """as recorded by its chunks"""
    already_there: int = 0
    copied_bytes: int = 0
    too_big: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    """folder#UID (why) of messages our mail server would not store, the first MAX_NAMED_REFUSED"""
    refused_more: int = 0
    """refused beyond those named (a source of empty messages names no more than that)"""
    flags_dropped: int = 0
    progress: int = 0
    """copied as last reported by a running chunk (ahead of `copied` while it runs)"""
    total: int | None = None
    """messages its step found missing here (to copy), once it has looked"""
    chunks: int = 0
    """chunks recorded: the next step of this folder is chunk number `chunks`"""
    renamed: bool = False
    """stored under a safe name, its own having no valid form here"""
    skipped: str | None = None
    """why it was left out (state skipped): a FolderSkip"""


@dataclass(frozen=True)
class Job:
    id: str
    started_at: datetime
    notification_address: str
    kind: Literal["copy", "purge"] = "copy"
    source_host: str = ""
    source_port: int = 0
    source_security: str = ""
    state: Literal["running", "completed", "failed", "cancelled"] = "running"
    planned: bool = False
    folders: tuple[FolderProgress, ...] = ()
    reason: str | None = None
    limit: int | None = None
    """the limit a job failed at (byte_limit, too_many_folders)"""
    ended_at: datetime | None = None
    purge: tuple[PurgeFolder, ...] = ()
    """a purge's plan: per folder, what goes"""
    removed_folders: tuple[str, ...] | None = None
    """a purge's last step, once done: the user's folders it removed"""
    started_by: str | None = None
    """the StartCopy that started it (its message id): that command delivered again starts nothing"""

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def purging(self) -> bool:
        return self.running and self.kind == "purge"

    @property
    def copied(self) -> int:
        return sum(max(f.copied, f.progress) for f in self.folders)

    def totals(self) -> dict[str, int]:
        if self.kind == "purge":
            return {"removed": self.copied, "folders_removed": len(self.removed_folders or ())}
        return {"copied": self.copied, "already_there": sum(f.already_there for f in self.folders),
                "copied_bytes": sum(f.copied_bytes for f in self.folders),
                "skipped_too_big": sum(len(f.too_big) for f in self.folders),
                "skipped_refused": sum(len(f.refused) + f.refused_more for f in self.folders),
                "flags_dropped": sum(f.flags_dropped for f in self.folders),
                "renamed_folders": sum(f.renamed for f in self.folders)}

    def skipped_folders(self) -> list[str]:
        return [decode_mutf7_or_raw(f.source_name) for f in self.folders if f.state == "skipped"]


@dataclass(frozen=True)
class PendingStart:
    """A StartCopy whose checks run (out of the account's turn): it holds the account's one job
    place until they answer, or for STARTING_FOR."""

    job_id: str
    command_id: str
    asked_at: datetime
    source_host: str
    source_port: int
    source_security: str
    notification_address: str
    secret: str
    """the source password, sealed"""

    def holds(self, now: datetime) -> bool:
        return now - self.asked_at < STARTING_FOR

    def job(self, now: datetime) -> Job:
        return Job(id=self.job_id, started_at=now, source_host=self.source_host, source_port=self.source_port,
                   source_security=self.source_security, notification_address=self.notification_address,
                   started_by=self.command_id)


@dataclass(frozen=True)
class StepResult:
    copied: int = 0
    already_there: int = 0
    copied_bytes: int = 0
    too_big: tuple[str, ...] = field(default=())
    refused: tuple[str, ...] = field(default=())
    flags_dropped: int = 0


@dataclass(frozen=True)
class Planned:
    name: str
    source_name: str
    up_to_date: int | None = None
    """the source's message count when nothing there is new since the last copy: no step"""
    renamed: bool = False
    skipped: str | None = None


def with_plan(job: Job, folders: list[Planned], now: datetime) -> Job:
    if job.planned or not job.running:
        return job
    progress = tuple(_planned(f) for f in folders)
    return _completed_if_done(replace(job, planned=True, folders=progress), now)


def _planned(folder: Planned) -> FolderProgress:
    if folder.skipped:
        return FolderProgress(folder.name, folder.source_name, state="skipped", renamed=folder.renamed, skipped=folder.skipped)
    if folder.up_to_date is not None:
        return FolderProgress(folder.name, folder.source_name, state="done", already_there=folder.up_to_date, total=0,
                              renamed=folder.renamed)
    return FolderProgress(folder.name, folder.source_name, renamed=folder.renamed)


def with_purge_plan(job: Job, plan: list[PurgeFolder], now: datetime) -> Job:
    """Every folder with messages gets a step; the empty ones are done at once."""
    if job.planned or not job.running:
        return job
    folders = tuple(FolderProgress(decode_mutf7_or_raw(f.name), f.name) if f.messages and f.below_uid > 1
                    else FolderProgress(decode_mutf7_or_raw(f.name), f.name, state="done", total=0) for f in plan)
    return _completed_if_done(replace(job, planned=True, folders=folders, purge=tuple(plan)), now)


def removing_folders(job: Job) -> bool:
    """A purge whose folders are all empty now, its user's folders still to remove."""
    return (job.kind == "purge" and job.running and job.planned and job.removed_folders is None
            and all(f.state == "done" for f in job.folders))


def with_folders_removed(job: Job, removed: list[str], now: datetime) -> Job:
    if not removing_folders(job):
        return job
    return _completed_if_done(replace(job, removed_folders=tuple(removed)), now)


def folder_of(job: Job, source_name: str) -> FolderProgress | None:
    return next((f for f in job.folders if f.source_name == source_name), None)


def with_step(job: Job, source_name: str, chunk: int, result: StepResult, now: datetime, *, more: bool = False) -> Job:
    """A folder's chunk done, the folder with it unless there is `more` (each chunk recorded once:
    a redelivered step's second record changes nothing)."""
    folder = folder_of(job, source_name)
    if not job.running or folder is None or folder.state in FINISHED or folder.chunks != chunk:
        return job
    recorded = replace(folder, state="pending" if more else "done", chunks=chunk + 1,
                       copied=folder.copied + result.copied, already_there=folder.already_there + result.already_there,
                       copied_bytes=folder.copied_bytes + result.copied_bytes, too_big=folder.too_big + result.too_big,
                       **_refused(folder, result.refused), flags_dropped=folder.flags_dropped + result.flags_dropped)
    if not more:
        recorded = replace(recorded, total=recorded.copied + len(recorded.too_big) + len(recorded.refused) + recorded.refused_more)
    return _completed_if_done(replace(job, folders=tuple(recorded if f is folder else f for f in job.folders)), now)


def _refused(folder: FolderProgress, more: tuple[str, ...]) -> dict[str, Any]:
    named = (folder.refused + more)[:MAX_NAMED_REFUSED]
    return {"refused": named, "refused_more": folder.refused_more + len(folder.refused) + len(more) - len(named)}


def with_folder_skipped(job: Job, source_name: str, chunk: int, why: str, now: datetime) -> Job:
    """A folder left out at its chunk (what its earlier chunks copied stays); the others go on."""
    folder = folder_of(job, source_name)
    if not job.running or folder is None or folder.state in FINISHED or folder.chunks != chunk:
        return job
    skipped = replace(folder, state="skipped", skipped=why, chunks=chunk + 1)
    return _completed_if_done(replace(job, folders=tuple(skipped if f is folder else f for f in job.folders)), now)


def with_progress(job: Job, source_name: str, copied: int, total: int) -> Job:
    """A folder's step reports how far it is (only while it runs; never backwards)."""
    if not job.running:
        return job
    folders = tuple(replace(f, progress=max(f.progress, copied), total=total)
                    if f.source_name == source_name and f.state == "pending" else f for f in job.folders)
    return replace(job, folders=folders)


def failed(job: Job, reason: str, now: datetime, limit: int | None = None) -> Job:
    return replace(job, state="failed", reason=reason, limit=limit, ended_at=now) if job.running else job


def cancelled(job: Job, now: datetime, reason: str | None = None) -> Job:
    return replace(job, state="cancelled", reason=reason, ended_at=now) if job.running else job


def _completed_if_done(job: Job, now: datetime) -> Job:
    if job.planned and all(f.state in FINISHED for f in job.folders) and not removing_folders(job):
        return replace(job, state="completed", ended_at=now)
    return job
