"""Account command handlers: authorize, apply the domain rules, record state + events at once."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from services.account.application.ports import (
    Accounts,
    Admins,
    AuditPublisher,
    Clock,
    Mailboxes,
    MailLogins,
    PasswordHasher,
    PendingDeletion,
    SessionIssuer,
    SessionVerifier,
)
from services.account.domain.account import (
    Account,
    Admin,
    LockoutPolicy,
    RuleBroken,
    check_account_address,
    check_comment,
    check_quota,
    with_comment,
    with_quota,
)
from services.account.domain.addresses import InvalidAddress, parse_address
from services.account.domain.guessing import FailureCounters
from services.account.domain.password_policy import check_password
from shared.auth import Actor, InvalidToken
from shared.contracts.account import (
    AccountCreated,
    AccountDeleted,
    AccountFieldError,
    AccountRejectCode,
    AccountRejected,
    AddressCommand,
    ChangeComment,
    ChangePassword,
    ChangeQuota,
    CommentChanged,
    CompleteDeletion,
    CreateAccount,
    DeleteAccount,
    GetAccount,
    Login,
    LoginFailed,
    LoginSucceeded,
    PasswordChanged,
    QuotaChanged,
    RemoveHome,
    VerifyPassword,
)
from shared.contracts.base import Accepted, Event, Keyed, Rejected, Reply
from shared.plans import PLANS, Plan


@dataclass(frozen=True)
class Deps:
    accounts: Accounts
    admins: Admins
    hasher: PasswordHasher
    mail_logins: MailLogins
    mailboxes: Mailboxes
    audit: AuditPublisher
    issuer: SessionIssuer
    verifier: SessionVerifier
    clock: Clock
    lockout: LockoutPolicy
    dummy_hash: str
    """verified against when the login is unknown, so timing does not reveal which logins exist"""
    new_home_id: Callable[[], str]
    unknown_logins: FailureCounters
    """lockout state of logins that do not exist, so that a lock does not tell which ones do"""


UNKNOWN_LOGIN = "[unknown login]"
"""what the audit records for a sign-in to a login that does not exist: never what was typed"""


def _admin_of_domain(actor: Actor, address: str) -> bool:
    return actor.is_admin and actor.may_act_on(address)


def _self_or_admin(actor: Actor, address: str) -> bool:
    return actor.may_act_on(address)


WHO_MAY: Mapping[type[AddressCommand], Callable[[Actor, str], bool]] = {
    CreateAccount: _admin_of_domain,
    DeleteAccount: _admin_of_domain,
    ChangeQuota: _admin_of_domain,
    ChangeComment: _admin_of_domain,
    GetAccount: _self_or_admin,
    ChangePassword: _self_or_admin,
    VerifyPassword: lambda actor, address: not actor.is_admin and actor.subject == address,
}


def rejected(command: Keyed, code: AccountRejectCode, message: str, *errors: AccountFieldError) -> Rejected:
    return AccountRejected(command_id=command.message_id, code=code, message=message, errors=errors)


def field_rejected(command: AddressCommand, *errors: AccountFieldError) -> Rejected:
    code: AccountRejectCode = ("not_allowed_on_plan" if any(e.code == "not_allowed_on_plan" for e in errors)
                               else "validation_failed")
    message = errors[0].message if len(errors) == 1 else "the command breaks several rules"
    return rejected(command, code, message, *errors)


class Refused(Exception):
    """A command stopped before it touches anything; `reply` says why."""

    def __init__(self, reply: Rejected) -> None:
        self.reply = reply


async def handle(command: AddressCommand | Login, deps: Deps) -> Reply:
    if isinstance(command, Login):
        return await login(command, deps)
    try:
        return await _account_command(command, deps)
    except Refused as refusal:
        return refusal.reply
    except RuleBroken as error:
        return field_rejected(command, _field_error(error))


async def _account_command(command: AddressCommand, deps: Deps) -> Reply:
    actor, address = _authorized(command, deps)
    if actor.is_admin:
        await _check_admin_still_holds(command, actor, address, deps)
    principal = await deps.accounts.get(address)
    if (account := _live(principal)) and not account.accepts_session(subject=actor.subject, issued_at=actor.issued_at,
                                                                      token_id=actor.token_id):
        raise Refused(rejected(command, "unauthenticated", "this session has ended (a logout, a sign-out everywhere or "
                                                           "a password change); log in again"))
    return await ACCOUNT_HANDLERS[type(command)](command, actor, address, principal, deps)


async def _check_admin_still_holds(command: AddressCommand, actor: Actor, address: str, deps: Deps) -> None:
    if refusal := await admin_refusal(command, actor, address.rpartition("@")[2], deps):
        raise Refused(refusal)


async def admin_refusal(command: Keyed, actor: Actor, domain: str, deps: Deps) -> Rejected | None:
    """Claims are checked against the stored admin, so a logout, a password or a domain change takes
    effect at once: None when the admin's session is live and it still administers `domain`."""
    admin = await deps.admins.current(actor.subject)
    if admin is None or not admin.accepts_session(issued_at=actor.issued_at, token_id=actor.token_id):
        return rejected(command, "unauthenticated", "this admin session has ended; log in again")
    if domain not in admin.domains:
        return rejected(command, "forbidden", f"{actor.subject} no longer administers {domain}")
    return None


def _authorized(command: AddressCommand, deps: Deps) -> tuple[Actor, str]:
    try:
        actor = deps.verifier.verify(command.actor_token)
        address = parse_address(command.address).full  # type: ignore[attr-defined]
    except InvalidToken:
        raise Refused(rejected(command, "unauthenticated", "the session token is missing, invalid or expired")) from None
    except InvalidAddress as error:
        raise Refused(rejected(command, "validation_failed", str(error),
                               AccountFieldError(field="address", code="invalid_address", message=str(error),
                                                 params=dict(error.params)))) from None
    if not WHO_MAY[type(command)](actor, address):
        raise Refused(rejected(command, "forbidden", f"{actor.subject} is not allowed to {command.type} {address}"))  # type: ignore[attr-defined]
    return actor, address


def _caused_by(command: Keyed) -> dict[str, Any]:
    return {"causation_id": command.message_id, "correlation_id": command.correlation_id}


async def _commit(command: AddressCommand, address: str, account: Account, event: Event, deps: Deps) -> Accepted:
    """Staged in the command's unit of work; the kit writes it, then the mail server follows."""
    await deps.accounts.save(address, account, events=[event])
    return Accepted(command_id=command.message_id, result={"address": address})


async def follow_mail_login(address: str, principal: Account | Admin | None, mail_logins: MailLogins) -> None:
    """Idempotent: the mail server ends up matching the stored state, however often it runs."""
    if isinstance(principal, Account):
        await mail_logins.grant(address, principal.password_hash, principal.quota_mb, principal.home)
    else:
        await mail_logins.revoke(address)


def _live(principal: Account | Admin | None) -> Account | None:
    return principal if isinstance(principal, Account) else None


def _existing(command: AddressCommand, address: str, principal: Account | Admin | None) -> Account:
    if not (account := _live(principal)):
        raise Refused(rejected(command, "not_found", f"{address} does not exist"))
    return account


def _field_error(error: RuleBroken) -> AccountFieldError:
    return AccountFieldError(field=error.field, code=error.code, message=error.message, params=error.params)


def _rule_errors(*checks: Callable[[], None]) -> list[AccountFieldError]:
    """Run every check and collect what they refuse, so one reply names every broken rule."""
    errors = []
    for check in checks:
        try:
            check()
        except RuleBroken as error:
            errors.append(_field_error(error))
    return errors


def _password_errors(field: str, password: str, plan: Plan, address: str) -> tuple[AccountFieldError, ...]:
    violations = check_password(password, policy=PLANS[plan].password_policy, address=address)
    return tuple(AccountFieldError(field=field, code=v.code, message=v.message, params=dict(v.params)) for v in violations)


async def create_account(command: CreateAccount, actor: Actor, address: str, principal: Account | Admin | None, deps: Deps) -> Reply:
    if _live(principal):
        return rejected(command, "already_exists", f"{address} already exists")
    if await deps.accounts.pending_deletion(address):
        return rejected(command, "being_deleted", f"{address} is still being deleted from the mail server; "
                                                  "try again in a moment")
    plan = Plan(command.plan)
    errors = [*_rule_errors(partial(check_account_address, address), partial(check_quota, plan, command.quota_mb),
                            partial(check_comment, command.comment)),
              *_password_errors("initial_password", command.initial_password.get_secret_value(), plan, address)]
    if errors:
        return field_rejected(command, *errors)
    password_hash = await deps.hasher.hash(command.initial_password.get_secret_value())
    account = Account(address=address, plan=plan, password_hash=password_hash, quota_mb=command.quota_mb,
                      comment=command.comment, sessions_valid_from=deps.clock(), home=deps.new_home_id(),
                      created_at=deps.clock())
    event = AccountCreated(address=address, plan=command.plan, quota_mb=command.quota_mb, comment=command.comment,
                           actor=actor.subject, sessions_valid_from=account.sessions_valid_from, **_caused_by(command))
    return await _commit(command, address, account, event, deps)


async def delete_account(command: DeleteAccount, actor: Actor, address: str, principal: Account | Admin | None, deps: Deps) -> Reply:
    """The account is gone at once for every command; AccountDeleted is published once the mail
    login is gone too (CompleteDeletion), and the home is removed after that."""
    account = _existing(command, address, principal)
    event = AccountDeleted(address=address, actor=actor.subject, sessions_valid_from=deps.clock(), **_caused_by(command))
    await deps.accounts.start_deletion(address, PendingDeletion(home=account.home, event=event))
    return Accepted(command_id=command.message_id, result={"address": address})


async def complete_deletion(command: CompleteDeletion, deps: Deps) -> Accepted:
    """Idempotent, and safe whoever sends it: the line is removed (again) in this turn, so nothing is
    published while the deleted account could still sign in."""
    address = command.subject_key()
    if not (pending := await deps.accounts.pending_deletion(address)):
        return Accepted(command_id=command.message_id, result={"completed": False})
    try:
        await deps.mail_logins.revoke(address)
    except OSError:  # the reconciler keeps trying and sends this again once the bucket is written
        return Accepted(command_id=command.message_id, result={"completed": False})
    await deps.accounts.finish_deletion(address, pending, work=[RemoveHome(address=address, home=pending.home)])
    return Accepted(command_id=command.message_id, result={"completed": True})


async def change_quota(command: ChangeQuota, actor: Actor, address: str, principal: Account | Admin | None, deps: Deps) -> Reply:
    account = _existing(command, address, principal)
    changed = with_quota(account, command.quota_mb)
    event = QuotaChanged(address=address, quota_mb=command.quota_mb, previous_quota_mb=account.quota_mb,
                         actor=actor.subject, **_caused_by(command))
    return await _commit(command, address, changed, event, deps)


async def change_comment(command: ChangeComment, actor: Actor, address: str, principal: Account | Admin | None, deps: Deps) -> Reply:
    account = _existing(command, address, principal)
    event = CommentChanged(address=address, comment=command.comment, actor=actor.subject,
                           **_caused_by(command))
    return await _commit(command, address, with_comment(account, command.comment), event, deps)


async def get_account(command: GetAccount, actor: Actor, address: str, principal: Account | Admin | None, deps: Deps) -> Reply:
    account = _existing(command, address, principal)
    usage = await deps.mailboxes.usage(address, account.home)
    return Accepted(command_id=command.message_id, result={
        "address": address, "plan": str(account.plan), "quota_mb": account.quota_mb, "comment": account.comment,
        "created_at": account.created_at.isoformat() if account.created_at else None,
        "usage": None if usage is None else {"bytes": usage.bytes, "messages": usage.messages}})


async def change_password(command: ChangePassword, actor: Actor, address: str, principal: Account | Admin | None, deps: Deps) -> Reply:
    account = _existing(command, address, principal)
    if not actor.is_admin and (refusal := await _current_password_refused(command, account, deps)):
        return refusal
    new_password = command.new_password.get_secret_value()
    if errors := _password_errors("new_password", new_password, account.plan, address):
        return rejected(command, "validation_failed", "the new password breaks the password policy", *errors)
    changed = replace(account, password_hash=await deps.hasher.hash(new_password),
                      sessions_valid_from=deps.clock(), sign_in=account.sign_in.after_success())
    event = PasswordChanged(address=address, actor=actor.subject, sessions_valid_from=changed.sessions_valid_from,
                            **_caused_by(command))
    return await _commit(command, address, changed, event, deps)


async def _current_password_refused(command: ChangePassword, account: Account, deps: Deps) -> Rejected | None:
    """A stolen session alone must not become a permanent takeover: the owner proves the current
    password, and a wrong one counts toward the sign-in lockout like a failed sign-in."""
    if command.current_password is None:
        return rejected(command, "validation_failed", "give your current password to change it",
                        AccountFieldError(field="current_password", code="required",
                                          message="the current password is required"))
    return await _password_refused(command, account, command.current_password.get_secret_value(), deps)


async def verify_password(command: VerifyPassword, actor: Actor, address: str, principal: Account | Admin | None,
                          deps: Deps) -> Reply:
    account = _existing(command, address, principal)
    if refusal := await _password_refused(command, account, command.password.get_secret_value(), deps):
        return refusal
    return Accepted(command_id=command.message_id, result={"address": address})


async def _password_refused(command: AddressCommand, account: Account, password: str, deps: Deps) -> Rejected | None:
    now = deps.clock()
    if account.sign_in.is_locked(now):
        locked = _login_failed(command, account.address, "locked", account.sign_in.failures)
        await deps.accounts.save(account.address, account, events=[locked])
        return _locked(command, account.sign_in.locked_until)
    if await deps.hasher.verify(account.password_hash, password):
        return None
    failed = replace(account, sign_in=account.sign_in.after_failure(now, deps.lockout))
    event = _login_failed(command, account.address, "invalid_credentials", failed.sign_in.failures)
    await deps.accounts.save(account.address, failed, events=[event])
    if failed.sign_in.is_locked(now):
        return _locked(command, failed.sign_in.locked_until)
    return rejected(command, "invalid_credentials", "the current password is wrong")


ACCOUNT_HANDLERS: Mapping[type[AddressCommand], Callable[..., Awaitable[Reply]]] = {
    CreateAccount: create_account,
    DeleteAccount: delete_account,
    ChangeQuota: change_quota,
    ChangeComment: change_comment,
    GetAccount: get_account,
    ChangePassword: change_password,
    VerifyPassword: verify_password,
}


async def login(command: Login, deps: Deps) -> Reply:
    """Every delivery of a Login is a sign-in attempt of its own: no replay skips the lockout or
    the audit (a Login redelivered after a crash is at worst counted twice)."""
    key, password = command.subject_key(), command.password.get_secret_value()
    principal = await deps.accounts.get(key)
    if principal is None:
        return await _unknown_login(command, key, password, deps)
    now = deps.clock()
    if principal.sign_in.is_locked(now):
        await _save_sign_in(command, key, principal, _login_failed(command, key, "locked", principal.sign_in.failures), deps)
        return _locked(command, principal.sign_in.locked_until)
    if not await deps.hasher.verify(principal.password_hash, password):
        return await _wrong_password(command, key, principal, now, deps)
    signed_in = replace(principal, sign_in=principal.sign_in.after_success())
    event = LoginSucceeded(login=key, role="admin" if isinstance(principal, Admin) else "user", **_caused_by(command))
    await _save_sign_in(command, key, signed_in, event, deps)
    return _session(command, principal, now, deps)


async def _unknown_login(command: Login, key: str, password: str, deps: Deps) -> Rejected:
    """Answered as a known login would be, with the same hash work: one verification, none while
    locked, and locked after as many failures. Audited as UNKNOWN_LOGIN: what was typed may be a
    password (Sato-2024abc is a valid login name too)."""
    now = deps.clock()
    state = deps.unknown_logins.state(key, now)
    if state.is_locked(now):
        await deps.audit.publish(_login_failed(command, UNKNOWN_LOGIN, "locked", state.failures))
        return _locked(command, state.locked_until)
    await deps.hasher.verify(deps.dummy_hash, password)
    state = deps.unknown_logins.failed(key, now)
    await deps.audit.publish(_login_failed(command, UNKNOWN_LOGIN, "invalid_credentials", state.failures))
    if state.is_locked(now):
        return _locked(command, state.locked_until)
    return rejected(command, "invalid_credentials", "wrong login or password")


async def _wrong_password(command: Login, key: str, principal: Account | Admin, now: datetime, deps: Deps) -> Rejected:
    failed = replace(principal, sign_in=principal.sign_in.after_failure(now, deps.lockout))
    await _save_sign_in(command, key, failed, _login_failed(command, key, "invalid_credentials", failed.sign_in.failures), deps)
    if failed.sign_in.is_locked(now):
        return _locked(command, failed.sign_in.locked_until)
    return rejected(command, "invalid_credentials", "wrong login or password")


def _login_failed(command: Keyed, key: str, reason: str, failures: int) -> LoginFailed:
    return LoginFailed(login=key, reason=reason, failures=failures, **_caused_by(command))


def _locked(command: Keyed, until: datetime | None) -> Rejected:
    when = until.isoformat(timespec="seconds") if until else "later"
    return rejected(command, "locked", f"too many failed sign-ins; try again after {when}")


async def _save_sign_in(command: Login, key: str, principal: Account | Admin, event: Event, deps: Deps) -> None:
    await deps.accounts.save(key, principal, events=[event])


def _session(command: Login, principal: Account | Admin, now: datetime, deps: Deps) -> Accepted:
    if isinstance(principal, Admin):
        subject, role, domains = principal.login, "admin", principal.domains
    else:
        subject, role, domains = principal.address, "user", frozenset()
    token, expires_at = deps.issuer.issue(subject=subject, role=role, domains=domains, now=now)  # type: ignore[arg-type]
    return Accepted(command_id=command.message_id, result={
        "token": token, "subject": subject, "role": role, "domains": sorted(domains),
        "expires_at": expires_at.isoformat(),
    })
