"""Commands and events owned by the account service."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from shared.contracts.base import AnonymousCommand, Command, Event, InternalCommand, Secret, WorkItem

PlanName = Literal["business-standard", "kwc", "sv-basic"]
AddressText = Annotated[str, Field(min_length=3, max_length=254)]
PasswordText = Annotated[Secret, Field(min_length=1, max_length=1024)]
QuotaMb = Annotated[int, Field(strict=True)]
CommentText = Annotated[str, Field(max_length=1000)]

SERVICE = "account"

AccountRejectCode = Literal["invalid_credentials", "locked"]
"""The account service's own codes, besides the shared ones in contracts/base.py."""


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
    holds (Dovecot's own count), comment."""

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
                   Login, ListAccounts)
"""what a client (the gateway, mailctl, another service as the registry allows) may send"""


AccountCommand = Annotated[
    CreateAccount | DeleteAccount | ChangeQuota | ChangeComment | GetAccount | ChangePassword | Login
    | ListAccounts,
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
    | AdminChanged | LoginSucceeded | LoginFailed,
    Field(discriminator="type"),
]
