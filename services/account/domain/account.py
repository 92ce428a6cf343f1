"""The account aggregate and its rules: quota, comment, sign-in lockout. Pure; no I/O."""

import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.account.domain.ended_sessions import NO_ENDED_SESSIONS, EndedSessions
from shared.contracts.account import AccountFieldCode
from shared.plans import Capability, Plan, allows

MIN_QUOTA_MB = 1
MAX_QUOTA_MB = 1_048_576  # [choice] 1 TiB; the seed gives no bounds
MAX_COMMENT_LENGTH = 200  # [choice]
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""marks, embeddings, overrides and isolates that reorder how text is displayed"""
INVISIBLE_BREAKS = frozenset("\u2028\u2029\u200b\u200c\u200d\u2060\ufeff")
"""line and paragraph separators, and zero-width characters that hide or split text"""


@dataclass(frozen=True)
class LockoutPolicy:
    """[choice] 5 failed sign-ins within 15 minutes lock sign-in for 15 minutes."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lock_for: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class SignInState:
    failures: int = 0
    first_failure_at: datetime | None = None
    locked_until: datetime | None = None

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def after_failure(self, now: datetime, policy: LockoutPolicy) -> "SignInState":
        window_open = self.first_failure_at is not None and now - self.first_failure_at < policy.window
        failures = self.failures + 1 if window_open else 1
        first = self.first_failure_at if window_open else now
        locked_until = now + policy.lock_for if failures >= policy.max_failures else None
        return SignInState(failures=failures, first_failure_at=first, locked_until=locked_until)

    def after_success(self) -> "SignInState":
        return SignInState()


@dataclass(frozen=True)
class Account:
    address: str
    plan: Plan
    password_hash: str
    quota_mb: int | None
    comment: str
    sign_in: SignInState = SignInState()
    sessions_valid_from: datetime | None = None
    """sessions issued earlier (before a password change or before the address was re-created) end"""
    home: str = ""
    """the id of this account's home on the mail server: new for every account created"""
    ended_sessions: EndedSessions = NO_ENDED_SESSIONS
    """sessions ended one by one (logouts), until their tokens expire"""
    created_at: datetime | None = None
    """None for accounts made before it was kept"""

    def accepts_session(self, *, subject: str, issued_at: datetime, token_id: str) -> bool:
        if subject != self.address:
            return True
        limited = self.sessions_valid_from is not None and issued_at < self.sessions_valid_from
        return not limited and not self.ended_sessions.includes(token_id)


@dataclass(frozen=True)
class Admin:
    """A server admin: signs in with a login name (no '@') and manages whole domains."""

    login: str
    password_hash: str
    domains: frozenset[str]
    sign_in: SignInState = SignInState()
    sessions_valid_from: datetime | None = None
    """set when the admin's password or domains change: earlier sessions end"""
    ended_sessions: EndedSessions = NO_ENDED_SESSIONS
    """sessions ended one by one (logouts), until their tokens expire"""

    def accepts_session(self, *, issued_at: datetime, token_id: str) -> bool:
        limited = self.sessions_valid_from is not None and issued_at < self.sessions_valid_from
        return not limited and not self.ended_sessions.includes(token_id)


class RuleBroken(Exception):
    """A command breaks a business rule; `field`, `code` and `params` (every number the message
    says) go into the rejection."""

    def __init__(self, *, field: str, code: AccountFieldCode, message: str, **params: int | str) -> None:
        super().__init__(message)
        self.field, self.code, self.message, self.params = field, code, message, params


def check_quota(plan: Plan, quota_mb: int | None) -> None:
    if quota_mb is None:
        return
    if not allows(plan, Capability.CHANGE_QUOTA):
        raise RuleBroken(field="quota_mb", code="not_allowed_on_plan", message=f"the {plan} plan has no quota setting",
                         plan=str(plan))
    if not MIN_QUOTA_MB <= quota_mb <= MAX_QUOTA_MB:
        raise RuleBroken(field="quota_mb", code="out_of_range", message=f"quota must be {MIN_QUOTA_MB}..{MAX_QUOTA_MB} MB",
                         min_mb=MIN_QUOTA_MB, max_mb=MAX_QUOTA_MB)


SUBADDRESS_DELIMITER = "+"


def check_account_address(address: str) -> None:
    """Mail to name+tag@ goes to name@ (the mail server's subaddressing), so no account may be
    called name+tag@: it could neither sign in nor receive."""
    if SUBADDRESS_DELIMITER in address.partition("@")[0]:
        raise RuleBroken(field="address", code="subaddress_delimiter",
                         message=f"an account address must not contain '{SUBADDRESS_DELIMITER}': mail to "
                                 f"name{SUBADDRESS_DELIMITER}tag@domain is delivered to name@domain",
                         delimiter=SUBADDRESS_DELIMITER)


def check_comment(comment: str) -> None:
    if len(comment) > MAX_COMMENT_LENGTH:
        raise RuleBroken(field="comment", code="too_long", message=f"comment must be at most {MAX_COMMENT_LENGTH} characters",
                         max_length=MAX_COMMENT_LENGTH)
    if any(unicodedata.category(ch) == "Cc" for ch in comment):
        raise RuleBroken(field="comment", code="control_character", message="comment must not contain control characters")
    if any(ch in INVISIBLE_BREAKS for ch in comment):
        raise RuleBroken(field="comment", code="invisible_character",
                         message="comment must not contain line separators or zero-width characters")
    if any(ch in BIDI_CONTROLS for ch in comment):
        raise RuleBroken(field="comment", code="bidi_control",
                         message="comment must not contain text-direction controls (they can disguise what it says)")


def with_quota(account: Account, quota_mb: int) -> Account:
    check_quota(account.plan, quota_mb)
    return replace(account, quota_mb=quota_mb)


def with_comment(account: Account, comment: str) -> Account:
    check_comment(comment)
    return replace(account, comment=comment)
