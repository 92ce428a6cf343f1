"""Commands and events owned by the notifier: the mails that tell a user a copy or a purge ended,
or that their password changed. It consumes the copy job's and the account service's events."""

from collections.abc import Mapping
from datetime import datetime
from typing import Literal, get_args

from pydantic import Field

from shared.contracts.account import AddressText
from shared.contracts.base import Command, Event, InternalCommand, RejectCode, WorkItem

SERVICE = "notifier"

NotifierRejectCode = RejectCode
"""Every code the notifier answers: the shared ones only."""

REJECT_CODES: tuple[NotifierRejectCode, ...] = get_args(NotifierRejectCode)
FIELD_CODES: tuple[str, ...] = ()
"""no rule of its own refuses a field (only the kit's shared field codes, contracts/base.py)"""
FIELD_PARAMS: Mapping[str, tuple[str, ...]] = {}

NotificationKind = Literal["copy_completed", "copy_failed", "purge_completed", "purge_failed", "password_changed"]


class GetNotifications(Command):
    """The account's notifications (the user's own, or an admin of its domain); `job_id` picks a job's."""

    KEY_FIELD = "address"
    type: Literal["GetNotifications"] = "GetNotifications"
    address: AddressText
    job_id: str | None = Field(default=None, max_length=64)


class Notify(InternalCommand):
    """Internal, from an event: one notification per event (`event_id`), however often it comes."""

    KEY_FIELD = "address"
    type: Literal["Notify"] = "Notify"
    address: AddressText
    """the account it is about"""
    event_id: str
    kind: NotificationKind
    to: str
    job_id: str | None = None
    reason: str | None = None
    """a failure's category (never the server's words)"""
    occurred_at: datetime
    """the event's: one from before the account was deleted is not notified after"""


class RecordDelivery(InternalCommand):
    """Internal, from the sender: the SMTP outcome of one attempt."""

    KEY_FIELD = "address"
    type: Literal["RecordDelivery"] = "RecordDelivery"
    address: AddressText
    notification_id: str
    outcome: Literal["sent", "retry", "refused"]
    error: str | None = None
    """the SMTP reply code and our category, e.g. `451 temporary` (no server text: it may echo input)"""


class RetryNotification(InternalCommand):
    """Internal, from the retry sweep: a notification whose next attempt is due."""

    KEY_FIELD = "address"
    type: Literal["RetryNotification"] = "RetryNotification"
    address: AddressText
    notification_id: str


class ForgetNotifications(InternalCommand):
    """Internal, from AccountDeleted: that address's records go."""

    KEY_FIELD = "address"
    type: Literal["ForgetNotifications"] = "ForgetNotifications"
    address: AddressText
    deleted_at: datetime


class SendNotification(WorkItem):
    """Render one notification and hand it to the mail server (one attempt)."""

    QUEUE = "send"
    CONCURRENCY = 8
    type: Literal["SendNotification"] = "SendNotification"
    address: AddressText
    notification_id: str


class NotificationEvent(Event):
    address: str
    notification_id: str
    kind: NotificationKind
    job_id: str | None = None


class NotificationSent(NotificationEvent):
    ROUTING_KEY = "notifier.notification.sent"
    type: Literal["NotificationSent"] = "NotificationSent"
    attempts: int


class NotificationFailed(NotificationEvent):
    ROUTING_KEY = "notifier.notification.failed"
    type: Literal["NotificationFailed"] = "NotificationFailed"
    attempts: int
    error: str | None = None


CLIENT_COMMANDS = (GetNotifications,)
