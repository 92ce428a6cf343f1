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
    "invalid_message": N_("The request could not be read. Please check the entries and try again."),
    "validation_failed": N_("Some entries need correcting. Please check the messages below."),
    "unauthenticated": N_("Your session has ended. Please log in again."),
    "forbidden": N_("You may not do this for this account."),
    "not_found": N_("The account was not found."),
    "already_exists": N_("This already exists."),
    "not_allowed_on_plan": N_("This is not available on the account's plan."),
    "unavailable": N_("The service is not answering right now. Please try again in a few minutes."),
    "invalid_credentials": N_("The login ID or password is incorrect."),
    "locked": N_("Too many failed attempts: this login is locked for a while. Please try again later."),
    "being_deleted": N_("This account is being deleted."),
    "already_running": N_("A mail data copy is already running for this account."),
    "not_cancellable": N_("This can no longer be cancelled."),
    "conflict": N_("Another change was made at the same moment. Please try again."),
}
"""every reject code of every contract (tests/gateway/unit/test_catalog.py holds it to them)"""

FIELD_MESSAGES: Mapping[str, str] = {
    # the kit's, from a command's own schema
    "missing": N_("Please enter this item."),
    "extra_forbidden": N_("This item is not accepted."),
    "string_too_short": N_("Please enter at least %(min_length)s characters."),
    "string_too_long": N_("Please enter at most %(max_length)s characters."),
    "too_short": N_("Please enter at least %(min_length)s characters."),
    "too_long": N_("Please enter at most %(max_length)s characters."),
    "greater_than_equal": N_("Please enter %(ge)s or more."),
    "less_than_equal": N_("Please enter %(le)s or less."),
    "literal_error": N_("Please choose one of the offered values."),
    "string_pattern_mismatch": N_("The format is not correct."),
    "invalid_value": N_("This value is not accepted."),
    "too_large": N_("The request is too large."),
    "required": N_("Please enter this item."),
    "empty": N_("Please enter this item."),
    # the account service's
    "invalid_address": N_("Please enter a valid mail address."),
    "subaddress_delimiter": N_("A mail address cannot contain “%(delimiter)s”."),
    "not_allowed_on_plan": N_("This cannot be set on this plan."),
    "out_of_range": N_("Please enter a quota from %(min_mb)s to %(max_mb)s MB."),
    "control_character": N_("Control characters cannot be used."),
    "invisible_character": N_("Invisible characters cannot be used."),
    "bidi_control": N_("Characters that change the text direction cannot be used."),
    "non_ascii_character": N_("Only half-width letters, digits and symbols can be used."),
    "forbidden_character": N_("This symbol cannot be used. Usable symbols: %(symbols)s"),
    "missing_lowercase": N_("Include at least one lowercase letter (a-z)."),
    "missing_uppercase": N_("Include at least one uppercase letter (A-Z)."),
    "missing_letter": N_("Include at least one letter."),
    "missing_digit": N_("Include at least one digit (0-9)."),
    "missing_symbol": N_("Include at least one of these symbols: %(symbols)s"),
    "same_as_local_part": N_("The password cannot be the same as the account name."),
    "same_as_address": N_("The password cannot be the same as the mail address."),
    "same_as_domain": N_("The password cannot be the same as the domain name."),
    "six_consecutive_digits": N_("The password cannot contain %(digits)s or more digits in a row."),
    "invalid_cursor": N_("This page link is no longer valid. Please start from the first page."),
    "invalid_characters": N_("Only these characters can be used in a search: %(characters)s"),
    "other_domain": N_("Please search within %(domain)s."),
    "page_size": N_("A page shows %(min)s to %(max)s accounts."),
    # the rules service's
    "too_wide": N_("The text is too long: %(width)s width units, of at most %(max_width)s."),
    "unsupported_character": N_("These characters cannot be used: %(characters)s"),
    "not_allowed": N_("This is not allowed here."),
    "too_many_rules": N_("At most %(max_count)s can be registered."),
    "internal_domain": N_("%(address)s cannot be used as a destination."),
    "own_address": N_("You cannot forward to this account's own address."),
    "duplicate": N_("%(address)s is already registered."),
    "too_many": N_("At most %(max_count)s destinations can be registered."),
    "not_found": N_("This setting was not found. It may have been deleted already."),
    # the copy job's
    "not_one_address": N_("Please enter one mail address."),
    "host_length": N_("The server name must be %(min_length)s to %(max_length)s characters."),
    "not_a_host_name": N_("Please enter a valid server name."),
    "malformed_ip_address": N_("The IP address is not valid."),
    "not_public": N_("This server cannot be used: its address is not on the internet."),
    "not_resolving": N_("The server %(host)s could not be found."),
    "no_address": N_("The server name has no address."),
    # the panel's own
    "mismatch": N_("The two new passwords do not match."),
    "invalid": N_("This value is not accepted."),
}
"""every field code of every contract, and the panel's own; a text's %(name)s are params the code carries
in every contract that has it"""

NOTICES: Mapping[str, str] = {
    "sign_in_first": N_("Please log in."),
    "expired": N_("Your session has expired. Please log in again."),
    "ended": N_("Your session has ended. Please log in again."),
    "signed_out": N_("You have logged out."),
    "signed_out_everywhere": N_("You have logged out on every device."),
    "password_changed": N_("Your password has been changed. Please log in with the new password."),
    "form_refused": N_("This form could not be accepted (it was not sent from this page). Please open the page again."),
    "form_expired": N_("The login page was open too long. Please try again."),
    "too_many_attempts": N_("Too many login attempts. Please wait a few minutes and try again."),
    "admins_only": N_("This page is for server administrators."),
    "no_such_page": N_("This page does not exist."),
    "request_refused": N_("This request could not be accepted."),
    "page_failed": N_("Something went wrong on our side. Please try again; if it keeps happening, tell the administrator."),
    "logout_not_told": N_("You are logged out in this browser, but the services could not be told just now, so the "
                          "session stays valid until it expires. To end it everywhere, log in again later and choose "
                          "“Log out on every device”."),
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


def notice_text(key: str | None, translations: Translations, done: Mapping[str, str] = DONE) -> str | None:
    """The notice or completion message a redirect names by its key (never text from the URL itself)."""
    message = NOTICES.get(key or "") or done.get(key or "")
    return translations.gettext(message) if message else None

PLAN_NAMES: Mapping[str, str] = {
    "business-standard": N_("Business Standard"),
    "kwc": N_("KWC Mail"),
    "sv-basic": N_("Shared plan SV-Basic"),
}
