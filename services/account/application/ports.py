"""What the account handlers need from the outside world."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.account.domain.account import Account, SignInState
from shared.contracts.base import Event

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Admin:
    """A server admin: signs in with a login name (no '@') and manages whole domains."""

    login: str
    password_hash: str
    domains: frozenset[str]
    sign_in: SignInState = SignInState()


@dataclass(frozen=True)
class Record:
    """What the store holds under one key: the live principal (None once deleted) and the
    replies of commands already applied to it, by message_id."""

    principal: Account | Admin | None
    applied: dict[str, dict[str, Any] | None] = field(default_factory=dict)


class Accounts(Protocol):
    async def get(self, key: str) -> Record | None: ...

    async def save(
        self, key: str, principal: Account | Admin | None, *,
        command_id: str, reply: dict[str, Any] | None, events: Sequence[Event],
    ) -> None:
        """One single-document write: new state, the applied command and pending events."""


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password_hash: str, password: str) -> bool: ...


class MailLogins(Protocol):
    """The mail server's view of credentials (Dovecot passdb)."""

    async def grant(self, address: str, password_hash: str) -> None: ...
    async def revoke(self, address: str) -> None: ...


class AuditPublisher(Protocol):
    async def publish(self, event: Event) -> None:
        """Publish an event that belongs to no stored aggregate (sign-in to an unknown login)."""
