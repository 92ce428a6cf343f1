"""Sign-in through the handlers: tokens for users and admins, the lockout, and what the audit keeps."""

from datetime import timedelta

import pytest

from services.account.domain.account import SignInState
from shared.contracts.account import (
    ChangePassword,
    CreateAccount,
    Login,
    LoginFailed,
    LoginSucceeded,
)
from tests.account.unit.handler_support import (
    ADDRESS,
    ADMIN_LOGIN,
    ADMIN_PASSWORD,
    DOMAIN,
    NEW_STRONG,
    OTHER_ADDRESS,
    OTHER_DOMAIN,
    STRONG,
    UNKNOWN_ADDRESS,
    WRONG,
    create,
    expect_accepted,
    expect_rejected,
    handle,
    log_in,
    seed_admin,
)

# --- Login ---------------------------------------------------------------------------------


async def test_login_with_right_password_issues_user_token(deps, tokens, accounts, token_verifier):
    """Ensure the right password gives a token the verifier accepts, for the user's own address."""
    await create(deps, tokens)

    reply = expect_accepted(await log_in(deps, "  Taro@Example.JP ", STRONG))

    assert (reply.result["subject"], reply.result["role"], reply.result["domains"]) == (ADDRESS, "user", [])
    actor = token_verifier.verify(reply.result["token"])
    assert (actor.subject, actor.role, actor.domains) == (ADDRESS, "user", frozenset())
    assert actor.may_act_on(ADDRESS) and not actor.may_act_on(OTHER_ADDRESS)
    event = accounts.saved_events[-1]
    assert isinstance(event, LoginSucceeded) and (event.login, event.role) == (ADDRESS, "user")


async def test_login_token_authorizes_own_password_change(deps, tokens):
    """Ensure the token from Login is accepted by the command handlers for the user's own address."""
    await create(deps, tokens)
    token = expect_accepted(await log_in(deps, ADDRESS, STRONG)).result["token"]

    expect_accepted(await handle(ChangePassword(actor_token=token, address=ADDRESS, new_password=NEW_STRONG,
                                                current_password=STRONG), deps))


async def test_login_with_wrong_password_records_failure_without_password(deps, tokens, accounts):
    """Ensure a wrong password is rejected as invalid_credentials and LoginFailed never carries the password."""
    await create(deps, tokens)

    expect_rejected(await log_in(deps, ADDRESS, WRONG), "invalid_credentials")

    event = accounts.saved_events[-1]
    assert isinstance(event, LoginFailed)
    assert (event.login, event.reason, event.failures) == (ADDRESS, "invalid_credentials", 1)
    assert WRONG not in event.model_dump_json() and STRONG not in event.model_dump_json()
    assert accounts.principal(ADDRESS).sign_in.failures == 1


async def test_five_failures_lock_sign_in_until_lock_expires(deps, tokens, accounts, clock, lockout):
    """Ensure 5 failures within the window lock sign-in, even with the right password, until lock_for passes."""
    await create(deps, tokens)
    for _ in range(lockout.max_failures - 1):
        expect_rejected(await log_in(deps, ADDRESS, WRONG), "invalid_credentials")
        clock.advance(timedelta(seconds=30))

    expect_rejected(await log_in(deps, ADDRESS, WRONG), "locked")
    expect_rejected(await log_in(deps, ADDRESS, STRONG), "locked")
    clock.advance(lockout.lock_for - timedelta(seconds=1))
    expect_rejected(await log_in(deps, ADDRESS, STRONG), "locked")
    assert accounts.saved_events[-1].reason == "locked"

    clock.advance(timedelta(seconds=2))
    expect_accepted(await log_in(deps, ADDRESS, STRONG))
    assert accounts.principal(ADDRESS).sign_in == SignInState()
    expect_rejected(await log_in(deps, ADDRESS, WRONG), "invalid_credentials")
    assert accounts.principal(ADDRESS).sign_in.failures == 1


async def test_an_unknown_login_locks_like_a_known_one_with_the_same_hash_work(deps, tokens, hasher, clock, lockout):
    """Ensure replies and hash verifications do not tell whether a login exists: an unknown login
    answers invalid_credentials, then locked, after as many failures as a known one, costs one
    verification per attempt until locked and none while locked, and its lock expires too."""
    await create(deps, tokens)

    async def attempts(login: str) -> tuple[list[str], list[int]]:
        codes, verifications = [], []
        for _ in range(lockout.max_failures + 2):
            before = len(hasher.verified)
            codes.append((await log_in(deps, login, WRONG)).code)
            verifications.append(len(hasher.verified) - before)
        return codes, verifications

    known, unknown = await attempts(ADDRESS), await attempts(UNKNOWN_ADDRESS)

    assert known == unknown
    assert known[0] == ["invalid_credentials"] * (lockout.max_failures - 1) + ["locked"] * 3
    assert known[1] == [1] * lockout.max_failures + [0, 0]
    clock.advance(lockout.lock_for + timedelta(seconds=1))
    expect_rejected(await log_in(deps, UNKNOWN_ADDRESS, WRONG), "invalid_credentials")


async def test_lock_state_of_unknown_logins_is_bounded(deps, lockout):
    """Ensure a spray of unknown logins keeps at most the configured number of lock states."""
    for n in range(250):
        await log_in(deps, f"spray{n}@example.jp", WRONG)

    assert len(deps.unknown_logins) == deps.unknown_logins.max_keys == 100


async def test_failures_outside_the_window_do_not_lock(deps, tokens, accounts, clock, lockout):
    """Ensure failures spread beyond the window start a new count instead of locking."""
    await create(deps, tokens)
    for _ in range(lockout.max_failures - 1):
        expect_rejected(await log_in(deps, ADDRESS, WRONG), "invalid_credentials")
    clock.advance(lockout.window)

    expect_rejected(await log_in(deps, ADDRESS, WRONG), "invalid_credentials")
    assert accounts.principal(ADDRESS).sign_in.failures == 1
    expect_accepted(await log_in(deps, ADDRESS, STRONG))


async def test_replayed_login_id_gives_no_free_guesses(deps, tokens, accounts, lockout):
    """Ensure reusing one Login message_id with wrong passwords counts every guess and locks."""
    await create(deps, tokens)
    command = Login(login=ADDRESS, password=WRONG)

    for _ in range(lockout.max_failures - 1):
        expect_rejected(await handle(command, deps), "invalid_credentials")
    expect_rejected(await handle(command, deps), "locked")

    assert accounts.principal(ADDRESS).sign_in.failures == lockout.max_failures
    expect_rejected(await log_in(deps, ADDRESS, STRONG), "locked")


async def test_redelivered_successful_login_is_audited_again(deps, tokens, accounts):
    """Ensure a redelivered Login is a sign-in attempt of its own: a session and an audit event each time."""
    await create(deps, tokens)
    command = Login(login=ADDRESS, password=STRONG)
    expect_accepted(await handle(command, deps))
    events_before = len(accounts.saved_events)

    expect_accepted(await handle(command, deps))

    assert len(accounts.saved_events) == events_before + 1


async def test_unknown_login_is_audited_and_costs_a_hash_check(deps, accounts, hasher, audit):
    """Ensure an unknown login is invalid_credentials, publishes LoginFailed and still verifies a dummy hash."""
    reply = expect_rejected(await log_in(deps, UNKNOWN_ADDRESS, WRONG), "invalid_credentials")

    [event] = audit.events
    assert isinstance(event, LoginFailed)
    assert (event.login, event.reason, event.failures) == ("[unknown login]", "invalid_credentials", 1)
    assert WRONG not in event.model_dump_json()
    assert hasher.verified == [(deps.dummy_hash, WRONG)]
    assert accounts.records == {} and accounts.saved_events == []
    # The reply must not tell an unknown login from a wrong password.
    assert reply.message == "wrong login or password"


@pytest.mark.parametrize("typed", ["Sato-2024abc", "Winter.Sky.2024", UNKNOWN_ADDRESS])
async def test_what_was_typed_as_an_unknown_login_is_never_recorded(deps, audit, typed):
    """Ensure a sign-in to a login that does not exist (perhaps a password typed into the login field,
    which may well look like a login name) is audited without what was typed."""
    expect_rejected(await log_in(deps, typed, WRONG), "invalid_credentials")

    [event] = audit.events
    assert typed.lower() not in event.model_dump_json().lower() and event.login == "[unknown login]"


async def test_admin_login_issues_admin_token_with_domains(deps, tokens, accounts, token_verifier):
    """Ensure an admin signs in by login name and gets an admin token for exactly their domains."""
    await seed_admin(accounts)

    reply = expect_accepted(await log_in(deps, ADMIN_LOGIN, ADMIN_PASSWORD))

    assert (reply.result["subject"], reply.result["role"]) == (ADMIN_LOGIN, "admin")
    assert reply.result["domains"] == [OTHER_DOMAIN, DOMAIN]
    actor = token_verifier.verify(reply.result["token"])
    assert (actor.subject, actor.role, actor.domains) == (ADMIN_LOGIN, "admin", frozenset({DOMAIN, OTHER_DOMAIN}))
    assert isinstance(accounts.saved_events[-1], LoginSucceeded) and accounts.saved_events[-1].role == "admin"
    command = CreateAccount(actor_token=reply.result["token"], address="new@example.com", plan="kwc", initial_password=STRONG)
    expect_accepted(await handle(command, deps))


async def test_admin_with_wrong_password_is_refused(deps, accounts):
    """Ensure an admin login with the wrong password is invalid_credentials and counted."""
    await seed_admin(accounts)

    expect_rejected(await log_in(deps, ADMIN_LOGIN, WRONG), "invalid_credentials")
    assert accounts.principal(ADMIN_LOGIN).sign_in.failures == 1
