"""What the copy job handlers need from the outside world."""

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.copyjob.domain.checkpoints import Mark
from services.copyjob.domain.jobs import Job, PendingStart
from services.copyjob.domain.retention import RetentionState
from services.copyjob.domain.source_host import Address, Source
from shared.contracts.base import Event, Reply, Requester, WorkItem


class Jobs(Protocol):
    """The one account of the command being handled: its plan and its jobs."""

    def plan(self) -> str | None:
        """None when the account is unknown here (or deleted)."""

    def generation(self) -> datetime | None: ...

    def current(self) -> Job | None:
        """The running job, or the last one."""

    def find(self, job_id: str) -> Job | None: ...

    def started_by(self, command_id: str) -> Job | None:
        """The current or a recent job that this StartCopy started."""

    def adopt(self, plan: str, generation: datetime) -> None: ...

    def forget(self) -> None: ...

    def save(self, job: Job, *, secret: str | None = None, addresses: Sequence[str] = (),
             events: Sequence[Event] = (), work: Sequence[WorkItem] = (), marks: dict[str, Mark] | None = None) -> None:
        """Stage the job; `secret` is kept only while it runs (its end removes it); `marks` are
        the folders' checkpoints to keep (by key), beside those already kept."""


    def starting(self) -> PendingStart | None:
        """A StartCopy whose checks still run."""

    def save_starting(self, pending: PendingStart | None, *, work: Sequence[WorkItem] = ()) -> None:
        """Stage the pending start (None: it is answered)."""

    def requester(self) -> Requester | None:
        """Who asked the command being handled (its answer may come later)."""

    def retention(self) -> RetentionState: ...

    def save_retention(self, state: RetentionState, *, work: Sequence[WorkItem] = ()) -> None: ...


class Resolver(Protocol):
    async def addresses(self, source: Source) -> list[Address]:
        """The checked addresses a copy may connect to for `source` (raise HostRefused)."""


class Passwords(Protocol):
    async def verify(self, actor_token: str, address: str, password: str) -> Reply:
        """The account service's answer to VerifyPassword."""


class Vault(Protocol):
    def seal(self, secret: str) -> str: ...

    def open(self, sealed: str) -> str: ...
