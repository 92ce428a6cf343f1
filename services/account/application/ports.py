"""What the account handlers need from the outside world."""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from services.account.domain.account import Account, Admin
from shared.auth import Actor, Role
from shared.contracts.base import Event

Clock = Callable[[], datetime]


Principal = Account | Admin


class Accounts(Protocol):
    """The one aggregate of the command being handled (an account, or an admin by login)."""

    async def get(self, key: str) -> Principal | None:
        """The live principal; None when there is none or it was deleted."""

    async def save(self, key: str, principal: Principal | None, *, events: Sequence[Event]) -> None:
        """Stage the new state (None: deleted) and its events: written together, in one write."""

    async def forget_if_deleted_before(self, key: str, moment: datetime) -> bool:
        """Remove the tombstone of an account deleted before `moment`, with its replay records."""


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
