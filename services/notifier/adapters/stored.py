"""Notifications as one document per account in the kit's unit of work, `_id` = address: the
recent notifications, the ids of the events already notified, the earliest retry due (for the
retry sweep's query), and when the account was last deleted."""

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from services.notifier.domain.notifications import EVENTS_REMEMBERED, KEPT, Notification
from shared.contracts.base import Event, WorkItem
from shared.messaging.unit_of_work import Doc, UnitOfWork


def notifications_of(doc: Doc | None) -> list[Notification]:
    return [Notification(**n) for n in (doc or {}).get("notifications", [])]


class NotificationsInUnit:
    def __init__(self, unit: UnitOfWork) -> None:
        self._unit = unit

    @property
    def _doc(self) -> Doc:
        return self._unit.state or {}

    def known(self, notification_id: str) -> bool:
        return notification_id in self._doc.get("notified", [])

    def find(self, notification_id: str) -> Notification | None:
        return next((n for n in self.all() if n.id == notification_id), None)

    def all(self) -> list[Notification]:
        return notifications_of(self._doc)

    def save(self, notification: Notification, *, events: Sequence[Event] = (), work: Sequence[WorkItem] = ()) -> None:
        others = [n for n in self.all() if n.id != notification.id]
        kept = [notification, *sorted(others, key=lambda n: n.created_at, reverse=True)][:KEPT]
        notified = [notification.id, *(i for i in self._doc.get("notified", []) if i != notification.id)][:EVENTS_REMEMBERED]
        fields: dict[str, Any] = {"notifications": [asdict(n) for n in kept], "notified": notified,
                                  "retry_at": _earliest(kept)}
        self._unit.stage(fields, events=events, work=work)

    def deleted_at(self) -> datetime | None:
        deleted: datetime | None = self._doc.get("deleted_at")
        return deleted

    def forget(self, deleted_at: datetime) -> None:
        self._unit.stage({"notifications": [], "notified": [], "retry_at": None, "deleted_at": deleted_at})


def _earliest(notifications: list[Notification]) -> datetime | None:
    due = [n.next_attempt_at for n in notifications if n.state == "pending" and n.next_attempt_at]
    return min(due) if due else None
