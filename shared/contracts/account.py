"""Commands and events owned by the account service."""

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal, get_args
from uuid import UUID

from pydantic import Field

from shared.auth import unverified_subject
from shared.contracts.base import (
    AnonymousCommand,
    Command,
    Event,
    FieldError,
    InternalCommand,
    Params,
    RejectCode,
    Rejected,
    Secret,
    WorkItem,
)

PlanName = Literal["business-standard", "kwc", "sv-basic"]
AddressText = Annotated[str, Field(min_length=3, max_length=254)]
PasswordText = Annotated[Secret, Field(min_length=1, max_length=1024)]
QuotaMb = Annotated[int, Field(strict=True)]
CommentText = Annotated[str, Field(max_length=1000)]

SERVICE = "account"

AccountRejectCode = Literal[RejectCode, "invalid_credentials", "locked", "being_deleted"]
"""Every code the account service answers: the shared ones and its own."""

AccountFieldCode = Literal[
    "invalid_address", "subaddress_delimiter",
    "not_allowed_on_plan", "out_of_range",
    "too_long", "control_character", "invisible_character", "bidi_control",
    "too_short", "non_ascii_character", "forbidden_character", "missing_lowercase", "missing_uppercase",
    "missing_letter", "missing_digit", "missing_symbol", "same_as_local_part", "same_as_address", "same_as_domain",
    "six_consecutive_digits", "required", "invalid_cursor", "invalid_characters", "other_domain",
    "page_size",
]
"""Every field code the account service's rules answer (the kit's shared ones aside)."""

REJECT_CODES: tuple[AccountRejectCode, ...] = get_args(AccountRejectCode)
FIELD_CODES: tuple[AccountFieldCode, ...] = get_args(AccountFieldCode)
FIELD_PARAMS: Mapping[AccountFieldCode, tuple[str, ...]] = {
    "invalid_address": ("min_length", "max_local_length", "max_domain_length", "max_label_length", "max_length"),
    "subaddress_delimiter": ("delimiter",),
    "not_allowed_on_plan": ("plan",),
    "out_of_range": ("min_mb", "max_mb"),
    "too_long": ("max_length",),
    "control_character": (),
    "invisible_character": (),
    "bidi_control": (),
    "too_short": ("min_length",),
    "non_ascii_character": (),
    "forbidden_character": ("symbols",),
    "missing_lowercase": (),
    "missing_uppercase": (),
    "missing_letter": (),
    "missing_digit": (),
    "missing_symbol": ("symbols",),
    "same_as_local_part": (),
    "same_as_address": (),
    "same_as_domain": (),
    "six_consecutive_digits": ("digits",),
    "required": (),
    "invalid_cursor": (),
    "invalid_characters": ("characters",),
    "other_domain": ("domain",),
    "page_size": ("min", "max"),
}
"""the params each field code carries: `symbols` the password policy's allowed symbols (a password
itself is never echoed), `digits` the run of digits refused, `plan` the account's plan"""


class AccountFieldError(FieldError):
    code: AccountFieldCode

    if TYPE_CHECKING:  # the code is checked where it is built (pydantic's mypy plugin leaves __init__ untyped)
        def __init__(self, *, field: str, code: AccountFieldCode, message: str, params: Params = ...) -> None: ...


class AccountRejected(Rejected):
    code: AccountRejectCode

    if TYPE_CHECKING:
        def __init__(self, *, command_id: UUID | None = None, code: AccountRejectCode, message: str,
                     errors: tuple[FieldError, ...] = ()) -> None: ...


class AddressCommand(Command):
    """A command on one account, keyed by its address."""

    KEY_FIELD = "address"


class CreateAccount(AddressCommand):
    type: Literal["CreateAccount"] = "CreateAccount"
    address: AddressText
    plan: PlanName
    initial_password: PasswordText
    quota_mb: QuotaMb | None = None
    comment: CommentText = ""


class DeleteAccount(AddressCommand):
    type: Literal["DeleteAccount"] = "DeleteAccount"
    address: AddressText


class ChangeQuota(AddressCommand):
    type: Literal["ChangeQuota"] = "ChangeQuota"
    address: AddressText
    quota_mb: QuotaMb


class ChangeComment(AddressCommand):
    type: Literal["ChangeComment"] = "ChangeComment"
    address: AddressText
    comment: CommentText


class GetAccount(AddressCommand):
    """The account as its owner (or an admin of its domain) sees it: plan, quota, what the mailbox
    holds (Dovecot's own count), comment and creation time (null for accounts made before it was kept)."""

    type: Literal["GetAccount"] = "GetAccount"
    address: AddressText


def domain_key(domain: str) -> str:
    """The key of a domain as a whole: '@' + the domain, which no address and no admin login can be."""
    return "@" + domain.strip().lower()


class ListAccounts(Command):
    """Admin, its own domains only: the domain's accounts sorted by address, a page at a time, those
    being deleted shown as such. Answered from the domain's directory, kept from the accounts' own
    changes: eventually consistent (a change shows within moments). Result: {"accounts": [{"address",
    "plan", "quota_mb", "comment", "created_at", "state": "active"|"deleting"}], "next": cursor|null}."""

    KEY_FIELD = "domain"
    type: Literal["ListAccounts"] = "ListAccounts"
    domain: Annotated[str, Field(min_length=1, max_length=253)]
    prefix: Annotated[str, Field(max_length=254)] = ""
    """only addresses starting with this (the part before @, or more of the address; any case)"""
    limit: Annotated[int, Field(strict=True)] = 50
    """accounts on the page: 1..100"""
    after: Annotated[str, Field(max_length=1024)] | None = None
    """`next` of the page before, as it was given"""

    def subject_key(self) -> str:
        return domain_key(self.domain)


class ChangePassword(AddressCommand):
    """A user changing their own password gives the current one; an admin changing a user's does not."""

    type: Literal["ChangePassword"] = "ChangePassword"
    address: AddressText
    new_password: PasswordText
    current_password: PasswordText | None = None


class VerifyPassword(AddressCommand):
    """The user re-proves their own password (e.g. before a mail copy starts); a wrong one counts
    toward the sign-in lockout. Only the account's own session may ask, and only for itself."""

    REPLAYABLE = False
    type: Literal["VerifyPassword"] = "VerifyPassword"
    address: AddressText
    password: PasswordText


class Login(AnonymousCommand):
    """Every delivery is a sign-in attempt of its own: no replay skips the lockout or the audit."""

    KEY_FIELD = "login"
    REPLAYABLE = False
    type: Literal["Login"] = "Login"
    login: Annotated[str, Field(min_length=1, max_length=254, repr=False)]
    """kept out of repr and set-aside bodies: what was typed here may be a password"""
    password: PasswordText


class EndSession(Command):
    """A logout: ends the session of the token it carries, and no other. Every service refuses that
    token's id from then on (SessionEnded). Nothing else is needed: the token names its subject."""

    type: Literal["EndSession"] = "EndSession"

    def subject_key(self) -> str:
        """The token's subject, unverified: it only picks the subject's shard (a forged token reaches a
        shard and is refused there)."""
        return unverified_subject(self.actor_token)


class SignOutEverywhere(Command):
    """Ends every session of `login` issued until now, the sender's too: a user its own, an admin its
    own, or an account's in its domains (a lost phone, without changing the password)."""

    KEY_FIELD = "login"
    type: Literal["SignOutEverywhere"] = "SignOutEverywhere"
    login: Annotated[str, Field(min_length=1, max_length=254)]
    """whose sessions: a mail address, or the sender's own admin login"""


class SetFirstAdmin(InternalCommand):
    """Internal, sent at start-up: make the admin named in settings exist as configured."""

    KEY_FIELD = "login"
    type: Literal["SetFirstAdmin"] = "SetFirstAdmin"
    login: Annotated[str, Field(min_length=1, max_length=254)]


class ForgetDeletedAccount(InternalCommand):
    """Internal, from the tombstone sweep: forget a deleted account kept past its retention."""

    KEY_FIELD = "address"
    type: Literal["ForgetDeletedAccount"] = "ForgetDeletedAccount"
    address: AddressText
    deleted_before: datetime


class CompleteDeletion(InternalCommand):
    """Internal, once the deleted account's mail login is gone (sent by the delete's own follow, the
    passwd reconciler, or the backstop sweep): publish AccountDeleted and remove the home."""

    KEY_FIELD = "address"
    type: Literal["CompleteDeletion"] = "CompleteDeletion"
    address: AddressText


class RemoveHome(WorkItem):
    """Remove a deleted account's home (mail and Sieve scripts) from the mail server: slow for a
    large mailbox, so never in a command's turn."""

    QUEUE = "homes"
    type: Literal["RemoveHome"] = "RemoveHome"
    address: AddressText
    home: Annotated[str, Field(pattern=r"^[0-9a-f]{0,32}$")]


CLIENT_COMMANDS = (CreateAccount, DeleteAccount, ChangeQuota, ChangeComment, GetAccount, ChangePassword, VerifyPassword,
                   Login, EndSession, SignOutEverywhere, ListAccounts)
"""what a client (the gateway, mailctl, another service as the registry allows) may send"""


AccountCommand = Annotated[
    CreateAccount | DeleteAccount | ChangeQuota | ChangeComment | GetAccount | ChangePassword | Login
    | EndSession | SignOutEverywhere | ListAccounts,
    Field(discriminator="type"),
]
"""What clients may send."""


class AccountCreated(Event):
    ROUTING_KEY = "account.account.created"
    type: Literal["AccountCreated"] = "AccountCreated"
    address: str
    plan: PlanName
    quota_mb: int | None
    comment: str
    actor: str
    sessions_valid_from: datetime
    """every service refuses this address's sessions issued earlier (a previous owner's)"""


class AccountDeleted(Event):
    ROUTING_KEY = "account.account.deleted"
    type: Literal["AccountDeleted"] = "AccountDeleted"
    address: str
    actor: str
    sessions_valid_from: datetime
    """every service refuses this address's sessions issued earlier"""


class PasswordChanged(Event):
    ROUTING_KEY = "account.account.password_changed"
    type: Literal["PasswordChanged"] = "PasswordChanged"
    address: str
    actor: str
    sessions_valid_from: datetime
    """every service refuses this address's sessions issued earlier"""


class QuotaChanged(Event):
    ROUTING_KEY = "account.account.quota_changed"
    type: Literal["QuotaChanged"] = "QuotaChanged"
    address: str
    quota_mb: int
    previous_quota_mb: int | None
    actor: str


class CommentChanged(Event):
    ROUTING_KEY = "account.account.comment_changed"
    type: Literal["CommentChanged"] = "CommentChanged"
    address: str
    comment: str
    actor: str


class AdminChanged(Event):
    """A server admin was set up, or its password or domains changed: its earlier sessions end."""

    ROUTING_KEY = "account.admin.changed"
    type: Literal["AdminChanged"] = "AdminChanged"
    login: str
    domains: tuple[str, ...]
    sessions_valid_from: datetime


class SessionEnded(Event):
    """One session ended (EndSession): every service refuses the token with this id. The token itself
    never travels; its expiry says how long the refusal must be kept."""

    ROUTING_KEY = "account.session.ended"
    type: Literal["SessionEnded"] = "SessionEnded"
    login: str
    """the session's subject: a mail address or an admin login"""
    token_id: str
    """the token's `jti`"""
    expires_at: datetime


class SignedOutEverywhere(Event):
    """Every session of `login` issued before `sessions_valid_from` ended (SignOutEverywhere)."""

    ROUTING_KEY = "account.session.signed_out_everywhere"
    type: Literal["SignedOutEverywhere"] = "SignedOutEverywhere"
    login: str
    """a mail address or an admin login"""
    actor: str
    sessions_valid_from: datetime


class LoginSucceeded(Event):
    ROUTING_KEY = "account.session.login_succeeded"
    type: Literal["LoginSucceeded"] = "LoginSucceeded"
    login: str
    role: Literal["user", "admin"]


class LoginFailed(Event):
    ROUTING_KEY = "account.session.login_failed"
    type: Literal["LoginFailed"] = "LoginFailed"
    login: str
    reason: Literal["invalid_credentials", "locked"]
    failures: int


AccountEvent = Annotated[
    AccountCreated | AccountDeleted | PasswordChanged | QuotaChanged | CommentChanged
    | AdminChanged | LoginSucceeded | LoginFailed | SessionEnded | SignedOutEverywhere,
    Field(discriminator="type"),
]
