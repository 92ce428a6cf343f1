"""What the account handlers need from the outside world."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.account.domain.account import Account, Admin
from shared.auth import Actor, Role
from shared.contracts.base import Event

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Record:
    """What the store holds under one key: the live principal (None once deleted) and the
    message_ids of the latest commands already applied to it."""

    principal: Account | Admin | None
    applied: frozenset[str] = frozenset()


class Accounts(Protocol):
    async def get(self, key: str) -> Record | None: ...

    async def save(
        self, key: str, principal: Account | Admin | None, *,
        command_id: str | None, events: Sequence[Event],
    ) -> None:
        """One single-document write: new state, the applied command id (None: nothing to
        remember, e.g. a sign-in attempt) and pending events."""


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

    async def grant(self, address: str, password_hash: str, quota_mb: int | None) -> None: ...
    async def revoke(self, address: str) -> None: ...


class AuditPublisher(Protocol):
    async def publish(self, event: Event) -> None:
        """Publish an event that belongs to no stored aggregate (sign-in to an unknown login)."""
