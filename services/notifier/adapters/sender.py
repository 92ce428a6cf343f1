"""The sender on the work queue: one attempt per item. The mail goes to the stack's Postfix with
aiosmtplib; the outcome is recorded in the account's turn: sent, refused for good (5xx, or a value
that would inject a header), or to be tried again later (4xx, no connection) by the retry sweep,
so a mail server that is down holds up no other notification. Also that sweep."""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Literal

import aiosmtplib
from opentelemetry.trace import SpanKind

from services.notifier.adapters.mail import UnsafeHeader, message_of
from services.notifier.adapters.stored import notifications_of
from services.notifier.settings import NotifierSettings
from shared.contracts.base import InternalCommand
from shared.contracts.notifier import RecordDelivery, RetryNotification, SendNotification
from shared.messaging.unit_of_work import Doc
from shared.telemetry import span

log = logging.getLogger(__name__)
Peek = Callable[[str], Awaitable[Doc | None]]
Send = Callable[[InternalCommand], Awaitable[None]]
Outcome = Literal["sent", "retry", "refused"]


@dataclass(frozen=True)
class Sender:
    peek: Peek
    send: Send
    settings: NotifierSettings
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    after_send: Callable[[], None] = lambda: None
    """between a mail handed over and its record: where a test makes the process die"""

    async def __call__(self, item: SendNotification) -> None:
        found = next((n for n in notifications_of(await self.peek(item.address)) if n.id == item.notification_id), None)
        if found is None or found.state != "pending":
            return  # recorded before: a redelivery after the record
        outcome: Outcome
        error: str | None
        try:
            mail = message_of(found, item.address, self.settings, self.clock())
        except UnsafeHeader:
            log.warning("notification %s refused: a line break in an address", found.id)
            outcome, error = "refused", "unsafe header value"
        else:
            with span("SMTP send", kind=SpanKind.CLIENT, attributes={
                    "mailss.account": item.address, "mailss.notification_id": str(found.id),
                    "mailss.kind": found.kind, "mailss.attempt": found.attempts + 1,
                    **({"mailss.job_id": found.job_id} if found.job_id else {})}) as current:
                outcome, error = await self._attempt(mail)
                current.set_attribute("mailss.outcome", outcome)
        if outcome == "sent":
            self.after_send()
        await self.send(RecordDelivery(address=item.address, notification_id=found.id, outcome=outcome, error=error))

    async def _attempt(self, mail: EmailMessage) -> tuple[Outcome, str | None]:
        login = self.settings.smtp_password.get_secret_value() if self.settings.smtp_password else None
        try:
            await aiosmtplib.send(mail, hostname=self.settings.smtp_host, port=self.settings.smtp_port,
                                  timeout=self.settings.smtp_timeout_s, start_tls=False, use_tls=False,
                                  username=self.settings.smtp_username if login else None, password=login)
        except aiosmtplib.SMTPAuthenticationError as error:  # ours to mend, not the recipient's: tried again
            return "retry", f"{error.code} our SMTP login was refused"
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [response.code for response in error.recipients]
            return ("refused" if all(code >= 500 for code in codes) else "retry"), f"{min(codes)} recipient refused"
        except aiosmtplib.SMTPResponseException as error:
            return ("refused" if error.code >= 500 else "retry"), f"{error.code} {'permanent' if error.code >= 500 else 'temporary'}"
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            return "retry", f"no connection ({type(error).__name__})"
        return "sent", None


def retries_due(every: Callable[[Doc], Awaitable[dict[str, Doc]]],
                clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Callable[[], Awaitable[list[RetryNotification]]]:
    async def due() -> list[RetryNotification]:
        now = clock()
        found = await every({"retry_at": {"$lte": now}})
        return [RetryNotification(address=address, notification_id=n.id) for address, doc in found.items()
                for n in notifications_of(doc) if n.state == "pending" and n.next_attempt_at and n.next_attempt_at <= now]

    return due
