"""Sessions that end and secrets that never leave, through the handlers."""

from dataclasses import replace
from datetime import timedelta

from shared.contracts.account import (
    AccountCreated,
    AccountDeleted,
    ChangePassword,
    CreateAccount,
    DeleteAccount,
    LoginFailed,
    LoginSucceeded,
    PasswordChanged,
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
    create_command,
    expect_accepted,
    expect_rejected,
    handle,
    log_in,
    seed_admin,
)

# --- Secrets -------------------------------------------------------------------------------


async def test_no_reply_or_event_contains_a_password(deps, tokens, accounts, audit, clock):
    """Ensure no reply and no event, in JSON or repr, ever contains a plain password."""
    initial, new, wrong, weak = "Zq9-Initial-Secret!", "Xk7-Changed-Secret!", "Wy5-Wrong-Secret!", "weaksecret"
    await seed_admin(accounts)
    replies = [
        await handle(create_command(tokens, password=initial), deps),
        await handle(create_command(tokens, OTHER_ADDRESS, password=weak), deps),
        await handle(ChangePassword(actor_token=tokens.user(ADDRESS), address=ADDRESS, new_password=weak,
                                    current_password=initial), deps),
        await handle(ChangePassword(actor_token=tokens.user(ADDRESS), address=ADDRESS, new_password=new,
                                    current_password=initial), deps),
        await log_in(deps, ADDRESS, new),
        await log_in(deps, ADMIN_LOGIN, ADMIN_PASSWORD),
        await log_in(deps, UNKNOWN_ADDRESS, wrong),
        *[await log_in(deps, ADDRESS, wrong) for _ in range(6)],
        await handle(DeleteAccount(actor_token=tokens.admin(DOMAIN), address=ADDRESS), deps),
    ]
    events = [*accounts.saved_events, *audit.events]
    assert {type(e) for e in events} >= {AccountCreated, PasswordChanged, LoginSucceeded, LoginFailed, AccountDeleted}

    for message in [*replies, *events]:
        for text in (message.model_dump_json(), repr(message), str(message)):
            for password in (initial, new, wrong, weak, ADMIN_PASSWORD):
                assert password not in text, (password, type(message).__name__)


async def test_password_change_ends_earlier_sessions(deps, tokens, clock):
    """Ensure a session signed in before the password changed is refused afterwards; a new one works."""
    await create(deps, tokens)
    old_session = expect_accepted(await log_in(deps, ADDRESS, STRONG)).result["token"]
    clock.now += timedelta(seconds=2)
    expect_accepted(await handle(ChangePassword(actor_token=tokens.admin(DOMAIN), address=ADDRESS, new_password=NEW_STRONG), deps))

    stale = await handle(ChangePassword(actor_token=old_session, address=ADDRESS, new_password=STRONG), deps)
    expect_rejected(stale, "unauthenticated")


async def test_recreated_address_refuses_the_previous_owners_session(deps, tokens, clock):
    """Ensure a token of a deleted account cannot act on an account later created with the same address."""
    await create(deps, tokens)
    old_session = expect_accepted(await log_in(deps, ADDRESS, STRONG)).result["token"]
    clock.now += timedelta(seconds=2)
    expect_accepted(await handle(DeleteAccount(actor_token=tokens.admin(DOMAIN), address=ADDRESS), deps))
    await create(deps, tokens)

    stale = await handle(ChangePassword(actor_token=old_session, address=ADDRESS, new_password=NEW_STRONG), deps)
    expect_rejected(stale, "unauthenticated")


async def test_text_that_is_no_login_name_is_not_repeated_in_audit(deps, audit):
    """Ensure a password typed into the login field does not reach the LoginFailed audit event."""
    expect_rejected(await log_in(deps, "Oops My Passw0rd!", WRONG), "invalid_credentials")

    [event] = audit.events
    assert "Passw0rd" not in event.model_dump_json()


async def test_admin_session_ends_when_the_admin_changes(deps, tokens, admins, clock):
    """Ensure an admin token issued before the admin's password or domains changed is refused."""
    token = tokens.admin(DOMAIN)
    admins.stored["root"] = replace(admins.stored["root"], sessions_valid_from=clock.now + timedelta(seconds=5))

    reply = await handle(CreateAccount(actor_token=token, address=ADDRESS, plan="kwc", initial_password=STRONG), deps)

    expect_rejected(reply, "unauthenticated")


async def test_admin_removed_from_a_domain_is_forbidden_there(deps, tokens, admins):
    """Ensure the stored domain list, not the token's claims, decides where an admin may act."""
    token = tokens.admin(DOMAIN)
    admins.stored["root"] = replace(admins.stored["root"], domains=frozenset({OTHER_DOMAIN}))

    reply = await handle(CreateAccount(actor_token=token, address=ADDRESS, plan="kwc", initial_password=STRONG), deps)

    expect_rejected(reply, "forbidden")


async def test_deleted_admin_token_is_refused(deps, tokens, admins):
    """Ensure a token of an admin that no longer exists acts on nothing."""
    token = tokens.admin(DOMAIN)
    del admins.stored["root"]

    reply = await handle(DeleteAccount(actor_token=token, address=ADDRESS), deps)

    expect_rejected(reply, "unauthenticated")


async def test_an_account_address_with_the_subaddress_delimiter_is_refused(deps, tokens, accounts, mail_logins):
    """Ensure jiro+tag@ cannot be created (the mail server delivers it to jiro@), with a field error."""
    reply = expect_rejected(await handle(create_command(tokens, "jiro+tag@example.jp"), deps), "validation_failed")

    assert [(e.field, e.code) for e in reply.errors] == [("address", "subaddress_delimiter")]
    assert "+" in reply.errors[0].message
    assert accounts.records == {} and mail_logins.logins == {}
