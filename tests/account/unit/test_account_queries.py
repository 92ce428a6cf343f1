"""GetAccount through its handler (fakes from conftest.py): the owner and its domain's admins see the
account with what its mailbox holds; nobody else, and nothing changes."""

from services.account.application.ports import MailboxUsage
from shared.contracts.account import DeleteAccount, GetAccount
from tests.account.unit.handler_support import (
    ADDRESS,
    BAD_TOKENS,
    BASIC,
    BASIC_ADDRESS,
    DOMAIN,
    OTHER_ADDRESS,
    OTHER_DOMAIN,
    UNKNOWN_ADDRESS,
    create,
    expect_accepted,
    expect_rejected,
    handle,
    state_of,
)


async def test_the_owner_and_its_domains_admin_see_the_account_and_its_mailbox(deps, tokens, accounts, mail_logins):
    await create(deps, tokens, quota_mb=2048, comment="営業部")
    created_at = accounts.principal(ADDRESS).created_at.isoformat()
    deps.mailboxes.held[ADDRESS] = MailboxUsage(bytes=123_456, messages=7)
    before = state_of(accounts, mail_logins)

    for token in (tokens.user(ADDRESS), tokens.admin(DOMAIN)):
        reply = expect_accepted(await handle(GetAccount(actor_token=token, address=ADDRESS.upper()), deps))
        assert reply.result == {"address": ADDRESS, "plan": "business-standard", "quota_mb": 2048, "comment": "営業部",
                                "created_at": created_at, "usage": {"bytes": 123_456, "messages": 7}}
    assert state_of(accounts, mail_logins) == before


async def test_sv_basic_has_no_quota_but_its_usage_is_shown(deps, tokens):
    await create(deps, tokens, BASIC_ADDRESS, plan="sv-basic", password=BASIC)
    deps.mailboxes.held[BASIC_ADDRESS] = MailboxUsage(bytes=10, messages=1)

    reply = expect_accepted(await handle(GetAccount(actor_token=tokens.admin(DOMAIN), address=BASIC_ADDRESS), deps))

    assert reply.result["quota_mb"] is None and reply.result["usage"] == {"bytes": 10, "messages": 1}


async def test_another_user_or_another_domains_admin_is_refused(deps, tokens):
    await create(deps, tokens)

    for token in (tokens.user(OTHER_ADDRESS), tokens.admin(OTHER_DOMAIN)):
        expect_rejected(await handle(GetAccount(actor_token=token, address=ADDRESS), deps), "forbidden")
    for bad in BAD_TOKENS.values():
        expect_rejected(await handle(GetAccount(actor_token=bad(tokens), address=ADDRESS), deps), "unauthenticated")


async def test_an_unknown_or_deleted_account_is_not_found(deps, tokens):
    expect_rejected(await handle(GetAccount(actor_token=tokens.admin(DOMAIN), address=UNKNOWN_ADDRESS), deps), "not_found")
    await create(deps, tokens)
    expect_accepted(await handle(DeleteAccount(actor_token=tokens.admin(DOMAIN), address=ADDRESS), deps))

    expect_rejected(await handle(GetAccount(actor_token=tokens.admin(DOMAIN), address=ADDRESS), deps), "not_found")
