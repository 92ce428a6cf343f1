"""What the panel says, as tables: every service's reject and field codes, the sign-in page's
notices and the completion messages. The texts are English msgids of the gettext catalog
(services/gateway/locale); a field message's numbers come from the service's reply (`params`), never
from a copy of its rules here.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shared.contracts.base import Rejected


def N_(message: str) -> str:
    """Marks a text for the catalog (pybabel extract -k N_); translated where it is shown."""
    return message


class Translations(Protocol):
    def gettext(self, message: str, /) -> str: ...


REJECT_MESSAGES: Mapping[str, str] = {
    "invalid_message": N_("The request could not be read. Please try again."),
    "validation_failed": N_("Some entries need correcting. Please check the messages below."),
    "unauthenticated": N_("Your session has ended. Please log in again."),
    "forbidden": N_("You may not do this for this account."),
    "not_found": N_("The account was not found."),
    "already_exists": N_("This already exists."),
    "not_allowed_on_plan": N_("This is not available on the account's plan."),
    "unavailable": N_("The service is not answering right now. Please try again in a few minutes."),
    "invalid_credentials": N_("The login ID or password is incorrect."),
    "locked": N_("Too many failed attempts: this login is locked for a while. Please try again later."),
}

FIELD_MESSAGES: Mapping[str, str] = {
    "required": N_("Please enter this item."),
    "too_long": N_("Please enter at most %(max_length)s characters."),
    "invalid": N_("This value is not accepted."),
    "mismatch": N_("The two new passwords do not match."),
}

NOTICES: Mapping[str, str] = {
    "sign_in_first": N_("Please log in."),
    "expired": N_("Your session has expired. Please log in again."),
    "ended": N_("Your session has ended. Please log in again."),
    "signed_out": N_("You have logged out."),
    "password_changed": N_("Your password has been changed. Please log in with the new password."),
    "form_refused": N_("This form could not be accepted (it was not sent from this page). Please open the page again."),
    "form_expired": N_("The login page was open too long. Please try again."),
    "too_many_attempts": N_("Too many login attempts. Please wait a few minutes and try again."),
    "admins_only": N_("This page is for server administrators."),
    "no_such_page": N_("This page does not exist."),
}

DONE: Mapping[str, str] = {
    "account_created": N_("The mail account has been created."),
    "account_deleted": N_("The mail account has been deleted."),
    "quota_changed": N_("The quota has been changed."),
    "comment_changed": N_("The comment has been changed."),
    "password_set": N_("The password has been changed."),
}

UNKNOWN_FIELD = N_("This value is not accepted.")
UNKNOWN_REJECTION = N_("The request was refused.")


@dataclass(frozen=True)
class Explained:
    """A refusal in the visitor's language: a summary, and the messages of each field."""

    summary: str
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def field_messages(self) -> tuple[tuple[str, str], ...]:
        return tuple((name, message) for name, messages in self.fields.items() for message in messages)


def explain(reply: Rejected, translations: Translations) -> Explained:
    summary = translations.gettext(REJECT_MESSAGES.get(reply.code, UNKNOWN_REJECTION))
    fields: dict[str, tuple[str, ...]] = {}
    for error in reply.errors:
        fields[error.field] = (*fields.get(error.field, ()), field_message(error.code, _params(error), translations))
    return Explained(summary=summary, fields=fields)


def field_message(code: str, params: Mapping[str, object], translations: Translations) -> str:
    template = translations.gettext(FIELD_MESSAGES.get(code, UNKNOWN_FIELD))
    try:
        return template % params if "%(" in template else template
    except (KeyError, TypeError, ValueError):
        return translations.gettext(UNKNOWN_FIELD)


def _params(error: object) -> Mapping[str, object]:
    params = getattr(error, "params", None)
    return params if isinstance(params, Mapping) else {}


def notice_text(key: str | None, translations: Translations) -> str | None:
    message = NOTICES.get(key or "") or DONE.get(key or "")
    return translations.gettext(message) if message else None

PLAN_NAMES: Mapping[str, str] = {
    "business-standard": N_("Business Standard"),
    "kwc": N_("KWC Mail"),
    "sv-basic": N_("Shared plan SV-Basic"),
}
