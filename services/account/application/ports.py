"""What the account handlers need from the outside world."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.account.domain.account import Account, Admin
from services.account.domain.directory import Index, Line
from shared.auth import Actor, Role
from shared.contracts.account import AccountDeleted
from shared.contracts.base import Event, WorkItem

Clock = Callable[[], datetime]


Principal = Account | Admin


@dataclass(frozen=True)
class PendingDeletion:
    """A deleted account whose mail login may still be in a passwd bucket: AccountDeleted waits
    until the line is gone, and the home until then too."""

    home: str
    event: AccountDeleted


class Accounts(Protocol):
    """The one aggregate of the command being handled (an account, or an admin by login)."""

    async def get(self, key: str) -> Principal | None:
        """The live principal; None when there is none or it was deleted."""

    async def save(self, key: str, principal: Principal | None, *, events: Sequence[Event]) -> None:
        """Stage the new state (None: deleted) and its events: written together, in one write."""

    async def pending_deletion(self, key: str) -> PendingDeletion | None:
        """The deletion of `key` still waiting for its mail login to be gone, if any."""

    async def start_deletion(self, key: str, pending: PendingDeletion) -> None:
        """Stage the tombstone; nothing is published yet."""

    async def finish_deletion(self, key: str, pending: PendingDeletion, *, work: Sequence[WorkItem]) -> None:
        """Stage the end of the deletion: its event published, `work` sent."""

    async def forget_if_deleted_before(self, key: str, moment: datetime) -> bool:
        """Remove the tombstone of an account deleted before `moment`, with its replay records."""


@dataclass(frozen=True)
class MailboxUsage:
    bytes: int = 0
    messages: int = 0


class Mailboxes(Protocol):
    async def usage(self, address: str, home: str) -> MailboxUsage | None:
        """What the account's mailbox holds, as Dovecot counts it for its quota (also without a limit);
        None when it cannot be read."""


class Admins(Protocol):
    async def current(self, login: str) -> Admin | None:
        """The admin as stored now (read only; it never joins another aggregate's turn)."""


class SessionIssuer(Protocol):
    def issue(self, *, subject: str, role: Role, domains: frozenset[str], now: datetime) -> tuple[str, datetime]: ...


class SessionVerifier(Protocol):
    def verify(self, token: str) -> Actor:
        """Raise shared.auth.InvalidToken when the token is not a live session."""


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password_hash: str, password: str) -> bool: ...


class MailLogins(Protocol):
    """The mail server's view of an account: credentials and quota (Dovecot passdb/userdb)."""

    async def grant(self, address: str, password_hash: str, quota_mb: int | None, home: str) -> None: ...
    async def revoke(self, address: str) -> None: ...


class AuditPublisher(Protocol):
    async def publish(self, event: Event) -> None:
        """Publish an event that belongs to no stored aggregate (sign-in to an unknown login)."""


class Directory(Protocol):
    """Each domain's directory (services/account/domain/directory.py): its index and its chunks, each
    one document read and written by `_id`. Written only in the domain's turn."""

    async def index(self, domain: str) -> Index | None:
        """None: the domain's directory was never built."""

    async def chunk(self, domain: str, chunk_id: str) -> tuple[Line, ...]: ...
    async def write_chunk(self, domain: str, chunk_id: str, lines: Sequence[Line]) -> None: ...
    async def write_index(self, domain: str, index: Index) -> None: ...
    async def drop_chunks(self, domain: str, chunk_ids: Sequence[str]) -> None: ...

    async def drop_unindexed(self, domain: str, index: Index) -> None:
        """Remove the domain's chunks `index` does not name (left by an interrupted change or an earlier
        build: a scan, for a build only)."""


class ListedAccounts(Protocol):
    async def lines(self, domain: str) -> list[Line]:
        """The domain's accounts as the directory lists them, read from the accounts themselves (a scan
        of every account: for a build only)."""
