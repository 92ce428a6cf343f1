"""The notifier for the kit: its spec and its one composition root. Events only: the copy job's
ends and the account's password changes become notifications; AccountDeleted erases them."""

from collections.abc import Callable
from datetime import timedelta
from functools import partial

from services.notifier.adapters.sender import Sender, retries_due
from services.notifier.adapters.stored import NotificationsInUnit
from services.notifier.application.handlers import (
    Deps,
    forget_notifications,
    get_notifications,
    notify,
    record_delivery,
    retry_notification,
)
from services.notifier.settings import NotifierSettings
from shared.contracts.account import AccountDeleted, PasswordChanged
from shared.contracts.copyjob import JobCompleted, JobFailed
from shared.contracts.notifier import (
    CLIENT_COMMANDS,
    SERVICE,
    ForgetNotifications,
    GetNotifications,
    Notify,
    RecordDelivery,
    RetryNotification,
    SendNotification,
)
from shared.messaging.service import Resources, ServiceSpec, Sweep, Wiring, over_units
from shared.messaging.unit_of_work import AggregateReader

AGGREGATES = "notifications"


def on_job_completed(event: JobCompleted) -> list[Notify]:
    return [Notify(address=event.address, event_id=str(event.message_id), kind=f"{event.kind}_completed",
                   to=event.notification_address, job_id=event.job_id, occurred_at=event.occurred_at)]


def on_job_failed(event: JobFailed) -> list[Notify]:
    return [Notify(address=event.address, event_id=str(event.message_id), kind=f"{event.kind}_failed",
                   to=event.notification_address, job_id=event.job_id, reason=event.reason, occurred_at=event.occurred_at)]


def on_password_changed(event: PasswordChanged, *, enabled: bool) -> list[Notify]:
    return [Notify(address=event.address, event_id=str(event.message_id), kind="password_changed",
                   to=event.address, occurred_at=event.occurred_at)] if enabled else []


def compose(settings: NotifierSettings, kit: Resources, *, after_send: Callable[[], None] = lambda: None) -> Wiring:
    """`after_send`: only tests set it (tests/notifier/crashing.py)."""
    stored = AggregateReader(kit.database[AGGREGATES])
    deps = Deps(sessions=kit.sessions, retry_for=timedelta(seconds=settings.retry_for_s),
                first_pause=timedelta(seconds=settings.retry_first_pause_s))
    handlers = over_units(NotificationsInUnit, {GetNotifications: get_notifications, Notify: notify,
                                                RecordDelivery: record_delivery, RetryNotification: retry_notification,
                                                ForgetNotifications: forget_notifications}, deps=deps)
    return Wiring(
        handlers=handlers, aggregates=AGGREGATES,
        reactions={
            JobCompleted: on_job_completed,
            JobFailed: on_job_failed,
            PasswordChanged: partial(on_password_changed, enabled=settings.security_notice),
            AccountDeleted: lambda e: [ForgetNotifications(address=e.address, deleted_at=e.occurred_at)],
        },
        work={SendNotification: Sender(peek=stored.peek, send=kit.send, settings=settings, after_send=after_send)},
        sweeps=(Sweep(settings.retry_sweep_s, retries_due(stored.every)),),
    )


SPEC = ServiceSpec(name=SERVICE, settings=NotifierSettings,
                   commands=(*CLIENT_COMMANDS, Notify, RecordDelivery, RetryNotification, ForgetNotifications),
                   compose=compose)
