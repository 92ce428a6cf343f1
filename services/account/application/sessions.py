"""Ending sessions: the sender's own (a logout, EndSession), or every one of a principal issued until now
(SignOutEverywhere). Both are recorded with their event in the principal's one write; every other
service learns them from the event (shared/sessions.py)."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from services.account.application.handlers import Deps, admin_refusal, rejected
from services.account.domain.account import Account, Admin
from services.account.domain.ended_sessions import EndedSessions
from shared.auth import Actor, ExpiredToken, InvalidToken
from shared.contracts.account import EndSession, SessionEnded, SignedOutEverywhere, SignOutEverywhere
from shared.contracts.base import Accepted, Command, Rejected, Reply

Principal = Account | Admin


def _live(principal: Principal | None, actor: Actor) -> bool:
    """The principal exists as the token says, and still accepts this session."""
    if isinstance(principal, Admin):
        return actor.is_admin and principal.accepts_session(issued_at=actor.issued_at, token_id=actor.token_id)
    if isinstance(principal, Account):
        return not actor.is_admin and principal.accepts_session(subject=actor.subject, issued_at=actor.issued_at,
                                                                token_id=actor.token_id)
    return False


def _caused_by(command: Command) -> dict[str, Any]:
    return {"causation_id": command.message_id, "correlation_id": command.correlation_id}


def _outcome(command: Command, login: str, outcome: str) -> Accepted:
    return Accepted(command_id=command.message_id, result={"login": login, "outcome": outcome})


async def end_session(command: EndSession, deps: Deps) -> Reply:
    """Idempotent: a session that ended already (a logout, a sign-out everywhere, a password change, a
    deleted account) or expired is answered so (`outcome`), and nothing is written."""
    key = command.subject_key()
    try:
        actor = deps.verifier.verify(command.actor_token)
    except ExpiredToken:  # genuine (the signature is checked first), and refused everywhere already
        return _outcome(command, key, "expired")
    except InvalidToken:
        return rejected(command, "unauthenticated", "the session token is missing or invalid")
    principal = await deps.accounts.get(key)
    if actor.subject != key or principal is None or not _live(principal, actor):
        return _outcome(command, key, "already_ended")
    ended = principal.ended_sessions.with_ended(actor.token_id, actor.expires_at, deps.clock())
    if ended is None:
        return await _sign_out(command, key, principal, actor, deps, outcome="ended_everywhere")
    event = SessionEnded(login=key, token_id=actor.token_id, expires_at=actor.expires_at, **_caused_by(command))
    await deps.accounts.save(key, replace(principal, ended_sessions=ended), events=[event])
    return _outcome(command, key, "ended")


async def sign_out_everywhere(command: SignOutEverywhere, deps: Deps) -> Reply:
    """A user for itself, an admin for itself or for an account of its domains (never another admin)."""
    key = command.subject_key()
    try:
        actor = deps.verifier.verify(command.actor_token)
    except InvalidToken:
        return rejected(command, "unauthenticated", "the session token is missing, invalid or expired")
    if refusal := await _refused(command, key, actor, deps):
        return refusal
    if (principal := await deps.accounts.get(key)) is None:
        return rejected(command, "not_found", f"{key} does not exist")
    if key == actor.subject and not _live(principal, actor):
        return rejected(command, "unauthenticated", "this session has ended; log in again")
    return await _sign_out(command, key, principal, actor, deps, outcome="ended_everywhere")


async def _refused(command: SignOutEverywhere, key: str, actor: Actor, deps: Deps) -> Rejected | None:
    if key == actor.subject:
        return None
    if not (actor.is_admin and "@" in key and actor.may_act_on(key)):
        return rejected(command, "forbidden", f"{actor.subject} may not end the sessions of {key}")
    return await admin_refusal(command, actor, key.rpartition("@")[2], deps)


async def _sign_out(command: Command, key: str, principal: Principal, actor: Actor, deps: Deps, *, outcome: str) -> Accepted:
    """Every session issued until now ends, so the one-by-one list has nothing left to say."""
    now = deps.clock()
    changed = replace(principal, sessions_valid_from=now, ended_sessions=EndedSessions())
    event = SignedOutEverywhere(login=key, actor=actor.subject, sessions_valid_from=now, **_caused_by(command))
    await deps.accounts.save(key, changed, events=[event])
    return _outcome(command, key, outcome)


SESSION_HANDLERS: Mapping[type[Command], Callable[..., Awaitable[Reply]]] = {
    EndSession: end_session,
    SignOutEverywhere: sign_out_everywhere,
}
