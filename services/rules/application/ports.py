"""What the rules handlers need from the outside world."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from services.rules.domain.rules import RuleSet
from shared.auth import Actor
from shared.contracts.base import Command, Event, Rejected, WorkItem


class RuleSets(Protocol):
    """The one account of the command being handled."""

    def current(self) -> RuleSet | None:
        """None when the account is unknown here or was deleted."""

    def generation(self) -> datetime | None:
        """When the account's present generation was created (its AccountCreated)."""

    def deployment(self) -> dict[str, Any]: ...

    def deployed_version(self) -> int: ...

    def save(self, rules: RuleSet, *, events: Sequence[Event] = (), work: Sequence[WorkItem] = (),
             generation: datetime | None = None, in_sync: bool = False) -> None:
        """Stage the rules; `in_sync`: the mail server already behaves so (nothing to deploy)."""

    def forward_keys(self) -> list[str]:
        """The forwarding addresses (local parts) that may be in Postfix's map for this account."""

    def drop(self, *, work: Sequence[WorkItem] = ()) -> None: ...

    def record_deployed(self, version: int, *, events: Sequence[Event], work: Sequence[WorkItem] = (),
                        forward_keys: list[str] | None = None) -> None:
        """`forward_keys`: what remains in the map once `work` (the pruning) is done."""

    def record_failure(self, reason: str, *, events: Sequence[Event]) -> None: ...

    def request(self, work: Sequence[WorkItem]) -> None: ...


class Sessions(Protocol):
    async def actor_of(self, command: Command) -> Actor | Rejected:
        """Who sent `command`, or the `unauthenticated` reply when its token is not a live session."""

    async def actor_on(self, command: Command, what: str) -> Actor | Rejected:
        """`actor_of`, or `forbidden` unless the actor may act on the command's address."""


class Outbound(Protocol):
    async def view(self, address: str) -> dict[str, Any]:
        """What the account sent out in the last hour (forwarded copies, autoreplies), what it held
        back over its limit (kept in the mailbox), and that limit."""
