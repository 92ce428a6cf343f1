"""A mail copy job and its folders, and how it moves: running -> completed | failed | cancelled.
One job per account at a time; each folder is recorded once however often its step runs. Pure."""

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

FolderState = Literal["pending", "done"]
RECENT_JOBS = 5
"""finished jobs GetJob can still show per account"""


@dataclass(frozen=True)
class FolderProgress:
    name: str
    source_name: str
    state: FolderState = "pending"
    copied: int = 0
    already_there: int = 0
    copied_bytes: int = 0
    too_big: tuple[str, ...] = ()
    total: int | None = None
    """messages its step found missing here (to copy), once it has looked"""


@dataclass(frozen=True)
class Job:
    id: str
    started_at: datetime
    source_host: str
    source_port: int
    source_security: str
    notification_address: str
    state: Literal["running", "completed", "failed", "cancelled"] = "running"
    planned: bool = False
    folders: tuple[FolderProgress, ...] = ()
    reason: str | None = None
    ended_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def copied(self) -> int:
        return sum(f.copied for f in self.folders)

    def totals(self) -> dict[str, int]:
        return {"copied": self.copied, "already_there": sum(f.already_there for f in self.folders),
                "copied_bytes": sum(f.copied_bytes for f in self.folders),
                "skipped_too_big": sum(len(f.too_big) for f in self.folders)}


@dataclass(frozen=True)
class StepResult:
    copied: int = 0
    already_there: int = 0
    copied_bytes: int = 0
    too_big: tuple[str, ...] = field(default=())


def with_plan(job: Job, folders: list[str], sources: list[str], now: datetime) -> Job:
    if job.planned or not job.running:
        return job
    planned = replace(job, planned=True, folders=tuple(FolderProgress(n, s) for n, s in zip(folders, sources, strict=True)))
    return _completed_if_done(planned, now)


def with_step(job: Job, folder: str, result: StepResult, now: datetime) -> Job:
    """A folder done (recorded once: a redelivered step's second record changes nothing)."""
    if not job.running:
        return job
    folders = tuple(replace(f, state="done", copied=result.copied, already_there=result.already_there,
                            copied_bytes=result.copied_bytes, too_big=result.too_big,
                            total=result.copied + len(result.too_big))
                    if f.name == folder and f.state == "pending" else f for f in job.folders)
    return _completed_if_done(replace(job, folders=folders), now)


def with_progress(job: Job, folder: str, copied: int, total: int) -> Job:
    """A folder's step reports how far it is (only while it runs; never backwards)."""
    if not job.running:
        return job
    folders = tuple(replace(f, copied=max(f.copied, copied), total=total) if f.name == folder and f.state == "pending" else f
                    for f in job.folders)
    return replace(job, folders=folders)


def failed(job: Job, reason: str, now: datetime) -> Job:
    return replace(job, state="failed", reason=reason, ended_at=now) if job.running else job


def cancelled(job: Job, now: datetime, reason: str | None = None) -> Job:
    return replace(job, state="cancelled", reason=reason, ended_at=now) if job.running else job


def _completed_if_done(job: Job, now: datetime) -> Job:
    if job.planned and all(f.state == "done" for f in job.folders):
        return replace(job, state="completed", ended_at=now)
    return job
