"""Passwords through the handlers: changing one's own (with the current one) or, as an admin, a user's,
and VerifyPassword for the copy job."""

import uuid

from shared.contracts.account import (
    ChangePassword,
    LoginFailed,
    PasswordChanged,
)
from tests.account.unit.handler_support import (
    ADDRESS,
    ADMIN_LOGIN,
    BASIC,
    BASIC_ADDRESS,
    DOMAIN,
    NEW_STRONG,
    OTHER_ADDRESS,
    STRONG,
    UNKNOWN_ADDRESS,
    WRONG,
    create,
    expect_accepted,
    expect_rejected,
    handle,
    log_in,
    state_of,
)

# --- ChangePassword ------------------------------------------------------------------------


async def test_user_changes_own_password(deps, tokens, accounts, mail_logins):
    """Ensure a user changes their own password: PasswordChanged saved and the mail login gets the new hash."""
    await create(deps, tokens)

    reply = await handle(ChangePassword(actor_token=tokens.user(ADDRESS), address=ADDRESS, new_password=NEW_STRONG,
                                        current_password=STRONG), deps)

    assert expect_accepted(reply).result == {"address": ADDRESS}
    event = accounts.saved_events[-1]
    assert isinstance(event, PasswordChanged) and (event.address, event.actor) == (ADDRESS, ADDRESS)
    assert accounts.principal(ADDRESS).password_hash == "hash:" + NEW_STRONG
    assert mail_logins.logins == {ADDRESS: "hash:" + NEW_STRONG}
    expect_rejected(await log_in(deps, ADDRESS, STRONG), "invalid_credentials")
    expect_accepted(await log_in(deps, ADDRESS, NEW_STRONG))


async def test_user_cannot_change_another_users_password(deps, tokens, accounts, mail_logins):
    """Ensure user A cannot change the password of user B in the same domain."""
    await create(deps, tokens)
    await create(deps, tokens, OTHER_ADDRESS)
    before = state_of(accounts, mail_logins)

    command = ChangePassword(actor_token=tokens.user(ADDRESS), address=OTHER_ADDRESS, new_password=NEW_STRONG)
    expect_rejected(await handle(command, deps), "forbidden")
    assert state_of(accounts, mail_logins) == before


async def test_admin_of_domain_changes_password(deps, tokens, accounts, mail_logins):
    """Ensure an admin of the domain may change a user's password, recorded with the admin as actor."""
    await create(deps, tokens)

    command = ChangePassword(actor_token=tokens.admin(DOMAIN), address=ADDRESS, new_password=NEW_STRONG)
    expect_accepted(await handle(command, deps))

    event = accounts.saved_events[-1]
    assert isinstance(event, PasswordChanged) and event.actor == ADMIN_LOGIN
    assert mail_logins.logins == {ADDRESS: "hash:" + NEW_STRONG}


async def test_new_password_breaking_policy_lists_every_rule(deps, tokens, accounts, mail_logins, hasher):
    """Ensure a new password is checked against the account plan's policy and every broken rule is listed."""
    await create(deps, tokens, BASIC_ADDRESS, plan="sv-basic", password=BASIC)
    before, hashed_before = state_of(accounts, mail_logins), list(hasher.hashed)

    command = ChangePassword(actor_token=tokens.user(BASIC_ADDRESS), address=BASIC_ADDRESS, new_password="Jiro",
                             current_password=BASIC)
    reply = expect_rejected(await handle(command, deps), "validation_failed")

    assert {(e.field, e.code) for e in reply.errors} == {
        ("new_password", "too_short"), ("new_password", "missing_digit"), ("new_password", "same_as_local_part")}
    assert len(reply.errors) == 3
    assert state_of(accounts, mail_logins) == before and hasher.hashed == hashed_before


async def test_changing_password_of_unknown_account_is_not_found(deps, tokens, accounts):
    """Ensure changing the password of an address that does not exist is rejected with not_found."""
    command = ChangePassword(actor_token=tokens.admin(DOMAIN), address=UNKNOWN_ADDRESS, new_password=NEW_STRONG)

    expect_rejected(await handle(command, deps), "not_found")
    assert accounts.records == {}


# --- Changing one's own password needs the current one -----------------------------------


async def test_own_password_change_without_the_current_password_is_refused(deps, tokens, accounts, mail_logins):
    """Ensure a user (a stolen session, say) cannot change the password without giving the current one."""
    await create(deps, tokens)
    before = state_of(accounts, mail_logins)

    reply = await handle(ChangePassword(actor_token=tokens.user(ADDRESS), address=ADDRESS, new_password=NEW_STRONG), deps)

    assert [(e.field, e.code) for e in expect_rejected(reply, "validation_failed").errors] == [("current_password", "required")]
    assert state_of(accounts, mail_logins) == before


async def test_wrong_current_password_counts_toward_the_lockout(deps, tokens, accounts, mail_logins, lockout):
    """Ensure a wrong current password is invalid_credentials, changes nothing but the failure count, and locks
    like failed sign-ins do."""
    await create(deps, tokens)
    guess = ChangePassword(actor_token=tokens.user(ADDRESS), address=ADDRESS, new_password=NEW_STRONG,
                           current_password=WRONG)

    first = await handle(guess, deps)
    replies = [await handle(guess.model_copy(update={"message_id": uuid.uuid4()}), deps) for _ in range(lockout.max_failures)]

    assert expect_rejected(first, "invalid_credentials").message == "the current password is wrong"
    assert replies[-1].code == "locked"
    assert [e.reason for e in accounts.saved_events if isinstance(e, LoginFailed)][-1] == "locked"
    assert accounts.principal(ADDRESS).password_hash == "hash:" + STRONG
    assert mail_logins.logins == {ADDRESS: "hash:" + STRONG}
    expect_rejected(await log_in(deps, ADDRESS, STRONG), "locked")


async def test_admin_changes_a_users_password_without_knowing_it(deps, tokens, accounts):
    """Ensure an admin of the domain sets a user's password without the current one."""
    await create(deps, tokens)

    expect_accepted(await handle(ChangePassword(actor_token=tokens.admin(DOMAIN), address=ADDRESS,
                                                new_password=NEW_STRONG), deps))
    assert accounts.principal(ADDRESS).password_hash == "hash:" + NEW_STRONG


# --- VerifyPassword (the copy job re-checks the user's own password) -----------------------


async def test_verify_password_answers_for_the_own_account_and_counts_failures(deps, tokens, accounts):
    """Ensure the right password is accepted, a wrong one is invalid_credentials counted toward the
    lockout, and only the account's own session may ask (not an admin, not another user)."""
    from shared.contracts.account import VerifyPassword

    await create(deps, tokens)
    own = tokens.user(ADDRESS)

    expect_accepted(await handle(VerifyPassword(actor_token=own, address=ADDRESS, password=STRONG), deps))
    expect_rejected(await handle(VerifyPassword(actor_token=own, address=ADDRESS, password=WRONG), deps), "invalid_credentials")
    assert accounts.principal(ADDRESS).sign_in.failures == 1
    expect_rejected(await handle(VerifyPassword(actor_token=tokens.admin(DOMAIN), address=ADDRESS, password=STRONG), deps),
                    "forbidden")
    expect_rejected(await handle(VerifyPassword(actor_token=tokens.user(OTHER_ADDRESS), address=ADDRESS, password=STRONG),
                                 deps), "forbidden")
    for _ in range(5):
        await handle(VerifyPassword(actor_token=own, address=ADDRESS, password=WRONG), deps)
    expect_rejected(await handle(VerifyPassword(actor_token=own, address=ADDRESS, password=STRONG), deps), "locked")
