"""A notification as a mail: UTF-8 body, RFC 2047 subject (Python's `email`, SMTP policy), a
Message-ID derived from the event id (a resend after a crash is recognisably the same mail), Date,
From from settings, `Auto-Submitted: auto-generated`. Nothing that could carry a line break gets
into a header."""

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from services.notifier.domain.masking import masked
from services.notifier.domain.notifications import Notification
from services.notifier.domain.templates import render
from services.notifier.settings import NotifierSettings


class UnsafeHeader(ValueError):
    """A value with CR, LF or NUL: refused rather than let it write a header of its own."""


def message_of(notification: Notification, account: str, settings: NotifierSettings, now: datetime) -> EmailMessage:
    for value in (notification.to, account, notification.id):
        if any(ch in value for ch in "\r\n\0"):
            raise UnsafeHeader("a line break in an address or id")
    words = render(notification.kind, settings.language, brand=settings.brand, address=masked(account),
                   faq_url=settings.faq_url, reason=notification.reason)
    mail = EmailMessage()
    mail["From"] = settings.mail_from
    mail["To"] = notification.to
    mail["Subject"] = words.subject
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = message_id(notification.id, settings.message_id_domain)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(words.body, charset="utf-8")
    return mail


def message_id(event_id: str, domain: str) -> str:
    safe = "".join(ch for ch in event_id if ch.isalnum() or ch in "-.")
    return f"<{safe or make_msgid()[1:-1]}@{domain}>"
