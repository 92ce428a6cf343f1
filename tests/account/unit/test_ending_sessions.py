"""Ending sessions through the handlers: one (EndSession, a logout) or all of a principal (SignOutEverywhere)."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from services.account.adapters.stored_accounts import principal_doc, principal_of
from services.account.application.sessions import SESSION_HANDLERS
from services.account.domain.ended_sessions import MAX_ENDED_SESSIONS, EndedSession, EndedSessions
from shared.contracts.account import (
    ChangeComment,
    EndSession,
    GetAccount,
    ListAccounts,
    SessionEnded,
    SignedOutEverywhere,
    SignOutEverywhere,
)
from tests.account.unit.handler_support import (
    ADDRESS,
    ADMIN_LOGIN,
    ADMIN_PASSWORD,
    BAD_TOKENS,
    DOMAIN,
    OTHER_ADDRESS,
    STRONG,
    create,
    expect_accepted,
    expect_rejected,
    handle,
    log_in,
    seed_admin,
)


async def run(command, deps):
    """As the entrypoint wires them: the session commands have handlers of their own."""
    if handler := SESSION_HANDLERS.get(type(command)):
        return await handler(command, deps)
    return await handle(command, deps)


async def signed_in(deps, login: str = ADDRESS, password: str = STRONG) -> str:
    return expect_accepted(await log_in(deps, login, password)).result["token"]


async def acts(deps, token: str, address: str = ADDRESS) -> bool:
    """Whether the account service still takes a command of this session."""
    reply = await run(GetAccount(actor_token=token, address=address), deps)
    return reply.status == "accepted" or reply.code != "unauthenticated"


def jti(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


async def test_a_logout_ends_that_session_and_no_other(deps, tokens, accounts):
    """Ensure EndSession refuses the sending token from then on while another session of the same account goes on,
    and its event names the token's id and expiry, never the token."""
    await create(deps, tokens)
    phone, laptop = await signed_in(deps), await signed_in(deps)

    reply = expect_accepted(await run(EndSession(actor_token=phone), deps))

    assert reply.result == {"login": ADDRESS, "outcome": "ended"}
    assert not await acts(deps, phone) and await acts(deps, laptop)
    [event] = [e for e in accounts.saved_events if isinstance(e, SessionEnded)]
    assert (event.login, event.token_id) == (ADDRESS, jti(phone))
    assert event.expires_at == datetime.fromtimestamp(jwt.decode(phone, options={"verify_signature": False})["exp"], UTC)
    assert phone not in event.model_dump_json()


async def test_ending_a_session_again_writes_nothing_and_says_so(deps, tokens, accounts):
    """Ensure a second EndSession of one token (a new message) is accepted as `already_ended` and changes nothing."""
    await create(deps, tokens)
    token = await signed_in(deps)
    expect_accepted(await run(EndSession(actor_token=token), deps))
    before = accounts.snapshot()

    again = expect_accepted(await run(EndSession(actor_token=token), deps))

    assert again.result == {"login": ADDRESS, "outcome": "already_ended"}
    assert accounts.snapshot() == before


async def test_an_expired_session_is_answered_as_expired(deps, tokens, accounts):
    """Ensure ending an expired session says so and writes nothing (every service refuses it already)."""
    await seed_admin(accounts)
    before = accounts.snapshot()

    reply = expect_accepted(await run(EndSession(actor_token=tokens.expired(DOMAIN)), deps))

    assert reply.result == {"login": ADMIN_LOGIN, "outcome": "expired"}
    assert accounts.snapshot() == before


@pytest.mark.parametrize("kind", [kind for kind in BAD_TOKENS if kind != "expired"])
async def test_a_token_not_of_this_system_ends_nothing(deps, tokens, accounts, kind):
    """Ensure EndSession with a garbage, foreign, tampered or unsigned token is `unauthenticated` and changes nothing."""
    await create(deps, tokens)
    before = accounts.snapshot()

    expect_rejected(await run(EndSession(actor_token=BAD_TOKENS[kind](tokens)), deps), "unauthenticated")

    assert accounts.snapshot() == before


async def test_a_session_of_a_deleted_account_has_already_ended(deps, tokens, accounts):
    """Ensure a logout after the account was deleted is answered `already_ended`, and no document is made."""
    reply = expect_accepted(await run(EndSession(actor_token=tokens.user("gone@example.jp")), deps))

    assert reply.result == {"login": "gone@example.jp", "outcome": "already_ended"}
    assert accounts.saved_keys == []


async def test_an_admin_logout_ends_its_session(deps, accounts, admins):
    """Ensure an admin's EndSession refuses that admin token for every command afterwards."""
    await seed_admin(accounts)
    token, other = await signed_in(deps, ADMIN_LOGIN, ADMIN_PASSWORD), await signed_in(deps, ADMIN_LOGIN, ADMIN_PASSWORD)

    expect_accepted(await run(EndSession(actor_token=token), deps))
    admins.stored[ADMIN_LOGIN] = accounts.principal(ADMIN_LOGIN)  # as the service reads it back

    ended = await run(ChangeComment(actor_token=token, address=ADDRESS, comment="after logout"), deps)
    still = await run(ChangeComment(actor_token=other, address=ADDRESS, comment="after logout"), deps)

    expect_rejected(ended, "unauthenticated")
    expect_rejected(still, "not_found")  # past the session checks: there is no such account
    expect_rejected(await run(ListAccounts(actor_token=token, domain=DOMAIN), deps), "unauthenticated")
    expect_accepted(await run(ListAccounts(actor_token=other, domain=DOMAIN), deps))


async def test_signing_out_everywhere_ends_every_session_until_now(deps, tokens, accounts, clock):
    """Ensure SignOutEverywhere refuses every earlier session of the account, the sender's too, and a new sign-in works."""
    await create(deps, tokens)
    phone, laptop = await signed_in(deps), await signed_in(deps)
    clock.advance(timedelta(seconds=1))

    reply = expect_accepted(await run(SignOutEverywhere(actor_token=laptop, login=ADDRESS), deps))

    assert reply.result == {"login": ADDRESS, "outcome": "ended_everywhere"}
    assert not await acts(deps, phone) and not await acts(deps, laptop)
    [event] = [e for e in accounts.saved_events if isinstance(e, SignedOutEverywhere)]
    assert (event.login, event.actor, event.sessions_valid_from) == (ADDRESS, ADDRESS, clock.now)
    clock.advance(timedelta(seconds=1))
    assert await acts(deps, await signed_in(deps))
    again = await run(SignOutEverywhere(actor_token=laptop, login=ADDRESS), deps)
    expect_rejected(again, "unauthenticated")


async def test_an_admin_ends_the_sessions_of_an_account_of_its_domains_only(deps, tokens, accounts, clock):
    """Ensure an admin may end every session of an account in its domains (not of one elsewhere, nor of another
    admin), and a user only its own."""
    await create(deps, tokens)
    await create(deps, tokens, OTHER_ADDRESS)
    user = await signed_in(deps)
    clock.advance(timedelta(seconds=1))

    expect_accepted(await run(SignOutEverywhere(actor_token=tokens.admin(DOMAIN), login=ADDRESS), deps))

    assert not await acts(deps, user)
    refused = [await run(SignOutEverywhere(actor_token=tokens.admin(DOMAIN), login="someone@example.net"), deps),
               await run(SignOutEverywhere(actor_token=tokens.admin(DOMAIN), login="otheradmin"), deps),
               await run(SignOutEverywhere(actor_token=tokens.user(OTHER_ADDRESS), login=ADDRESS), deps)]
    assert [reply.code for reply in refused] == ["forbidden"] * 3
    missing = await run(SignOutEverywhere(actor_token=tokens.admin(DOMAIN), login="nobody@example.jp"), deps)
    expect_rejected(missing, "not_found")


async def test_one_logout_too_many_ends_every_session(deps, tokens, accounts, clock):
    """Ensure the logouts an account keeps are bounded: past MAX_ENDED_SESSIONS live ones, a logout ends every session."""
    await create(deps, tokens)
    for _ in range(MAX_ENDED_SESSIONS):
        expect_accepted(await run(EndSession(actor_token=await signed_in(deps)), deps))
    assert len(accounts.principal(ADDRESS).ended_sessions.sessions) == MAX_ENDED_SESSIONS
    survivor, last = await signed_in(deps), await signed_in(deps)
    clock.advance(timedelta(seconds=1))

    reply = expect_accepted(await run(EndSession(actor_token=last), deps))

    assert reply.result["outcome"] == "ended_everywhere"
    assert not await acts(deps, survivor) and not await acts(deps, last)
    assert accounts.principal(ADDRESS).ended_sessions == EndedSessions()


def test_expired_logouts_are_forgotten_when_the_next_is_kept():
    """Ensure an account's list keeps only logouts of tokens not yet expired (past the clock leeway)."""
    now = datetime.now(UTC).replace(microsecond=0)
    kept = EndedSessions((EndedSession("old", now - timedelta(minutes=5)), EndedSession("live", now + timedelta(minutes=5))))

    after = kept.with_ended("new", now + timedelta(hours=1), now)

    assert after is not None and [ended.token_id for ended in after.sessions] == ["live", "new"]
    assert after.includes("new") and not after.includes("old") and not after.includes("")


def test_logouts_survive_the_stored_document():
    """Ensure an account's and an admin's ended sessions are stored and read back, and a tombstone keeps none."""
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    ended = EndedSessions((EndedSession("0123abcd", expires),))
    from services.account.domain.account import Account, Admin
    from shared.plans import Plan

    account = Account(address=ADDRESS, plan=Plan("kwc"), password_hash="h", quota_mb=None, comment="", ended_sessions=ended)
    admin = Admin(login=ADMIN_LOGIN, password_hash="h", domains=frozenset({DOMAIN}), ended_sessions=ended)

    assert principal_of(ADDRESS, principal_doc(account)).ended_sessions == ended
    assert principal_of(ADMIN_LOGIN, principal_doc(admin)).ended_sessions == ended
    assert principal_doc(None)["ended_sessions"] is None
