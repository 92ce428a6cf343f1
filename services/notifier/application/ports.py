"""What the notifier's handlers need from the outside world."""

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.notifier.domain.notifications import Notification
from shared.contracts.base import Event, WorkItem


class Notifications(Protocol):
    """The one account of the command being handled: its notifications."""

    def known(self, notification_id: str) -> bool:
        """An event already turned into a notification (even one no longer kept on record)."""

    def find(self, notification_id: str) -> Notification | None: ...

    def all(self) -> list[Notification]: ...

    def save(self, notification: Notification, *, events: Sequence[Event] = (), work: Sequence[WorkItem] = ()) -> None: ...

    def deleted_at(self) -> datetime | None:
        """When the account was last deleted (its records went then)."""

    def forget(self, deleted_at: datetime) -> None:
        """Erase the records; keep only when, so that a late event of the old account sends nothing."""
