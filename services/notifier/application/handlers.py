"""Notifier handlers: an event becomes one notification (a redelivered event, nothing new) with a
send on the work queue; the sender's outcome moves it on; a due retry is sent again; a deleted
account's records go. GetNotifications shows them. Nothing here talks SMTP."""

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notifier.application.ports import Notifications
from services.notifier.domain.notifications import Notification, deferred, refused, sent
from shared.contracts.base import Accepted, Rejected, Reply
from shared.contracts.notifier import (
    ForgetNotifications,
    GetNotifications,
    NotificationFailed,
    NotificationSent,
    Notify,
    RecordDelivery,
    RetryNotification,
    SendNotification,
)
from shared.generations import of_earlier_generation
from shared.sessions import SessionGuard


@dataclass(frozen=True)
class Deps:
    sessions: SessionGuard
    retry_for: timedelta
    first_pause: timedelta
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


async def get_notifications(command: GetNotifications, box: Notifications, deps: Deps) -> Reply:
    if isinstance(actor := await deps.sessions.actor_on(command, "the notifications"), Rejected):
        return actor
    shown = [view(n) for n in box.all() if command.job_id is None or n.job_id == command.job_id]
    return Accepted(command_id=command.message_id, result={"notifications": shown})


async def notify(command: Notify, box: Notifications, deps: Deps) -> Accepted:
    if not box.known(command.event_id) and not of_earlier_generation(command.occurred_at, box.deleted_at()):
        notification = Notification(id=command.event_id, kind=command.kind, to=command.to, created_at=deps.clock(),
                                    job_id=command.job_id, reason=command.reason)
        box.save(notification, work=[SendNotification(address=command.address, notification_id=notification.id)])
    return Accepted(command_id=command.message_id)


async def record_delivery(command: RecordDelivery, box: Notifications, deps: Deps) -> Accepted:
    if (notification := box.find(command.notification_id)) is None or notification.state != "pending":
        return Accepted(command_id=command.message_id)
    now = deps.clock()
    moved = {"sent": lambda: sent(notification, now), "refused": lambda: refused(notification, command.error, now),
             "retry": lambda: deferred(notification, command.error, now, deps.retry_for, deps.first_pause)}[command.outcome]()
    box.save(moved, events=_ended(moved, command.address))
    return Accepted(command_id=command.message_id)


async def retry_notification(command: RetryNotification, box: Notifications, deps: Deps) -> Accepted:
    notification = box.find(command.notification_id)
    if notification and notification.state == "pending" and notification.next_attempt_at \
            and notification.next_attempt_at <= deps.clock():
        again = replace(notification, next_attempt_at=None)
        box.save(again, work=[SendNotification(address=command.address, notification_id=notification.id)])
    return Accepted(command_id=command.message_id)


async def forget_notifications(command: ForgetNotifications, box: Notifications, deps: Deps) -> Accepted:
    box.forget(command.deleted_at)
    return Accepted(command_id=command.message_id)


def _ended(notification: Notification, address: str) -> list[Any]:
    about = {"address": address, "notification_id": notification.id, "kind": notification.kind,
             "job_id": notification.job_id, "attempts": notification.attempts}
    if notification.state == "sent":
        return [NotificationSent(**about)]
    if notification.state == "failed":
        return [NotificationFailed(**about, error=notification.last_error)]
    return []


def view(notification: Notification) -> dict[str, Any]:
    shown = asdict(notification)
    return {**shown, **{k: v.isoformat() for k, v in shown.items() if isinstance(v, datetime)}}
