"""A notification and how it moves: pending -> sent | failed. A temporary refusal (SMTP 4xx, no
connection) is tried again later with a growing pause, for `retry_for` (a day by default) from its
first attempt; a permanent one (5xx) fails it at once. Pure."""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

FIRST_PAUSE = timedelta(seconds=30)
LONGEST_PAUSE = timedelta(hours=1)
KEPT = 50
"""notifications an account keeps on record (GetNotifications); event ids are remembered longer"""
EVENTS_REMEMBERED = 500


@dataclass(frozen=True)
class Notification:
    id: str
    """the event's id: one notification per event"""
    kind: str
    to: str
    created_at: datetime
    job_id: str | None = None
    reason: str | None = None
    state: Literal["pending", "sent", "failed"] = "pending"
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    ended_at: datetime | None = None


def sent(notification: Notification, now: datetime) -> Notification:
    if notification.state != "pending":
        return notification
    return replace(notification, state="sent", attempts=notification.attempts + 1, ended_at=now, next_attempt_at=None)


def refused(notification: Notification, error: str | None, now: datetime) -> Notification:
    if notification.state != "pending":
        return notification
    return replace(notification, state="failed", attempts=notification.attempts + 1, last_error=error, ended_at=now,
                   next_attempt_at=None)


def deferred(notification: Notification, error: str | None, now: datetime, retry_for: timedelta,
             first_pause: timedelta = FIRST_PAUSE) -> Notification:
    """Another attempt later (the pause doubling from `first_pause`, an hour at most), unless it has
    been tried for `retry_for` already."""
    if notification.state != "pending":
        return notification
    if now - notification.created_at >= retry_for:
        return refused(notification, error, now)
    attempts = notification.attempts + 1
    pause = min(first_pause * 2 ** (attempts - 1), LONGEST_PAUSE)
    return replace(notification, attempts=attempts, last_error=error, next_attempt_at=now + pause)
