"""The account service answers only what its contract names: every field code with the params the
contract documents, so a client words each refusal in its own language without its rule tables."""

from services.account.domain.account import MAX_COMMENT_LENGTH, MAX_QUOTA_MB, MIN_QUOTA_MB
from services.account.domain.password_policy import STRONG_MAX_LENGTH
from shared.contracts import account
from shared.contracts.account import ChangeComment, ChangePassword, ChangeQuota, GetAccount, ListAccounts
from shared.contracts.base import Rejected
from tests.account.unit.handler_support import (
    ADDRESS,
    BASIC_ADDRESS,
    DOMAIN,
    STRONG,
    WRONG,
    create,
    create_command,
    expect_rejected,
    handle,
    log_in,
)
from tests.answer_codes import check_rejected

BAD_CREATES = [
    {"address": "us..er@example.jp"},
    {"address": "a" * 65 + "@example.jp"},
    {"address": "taro+news@example.jp"},
    {"quota_mb": 0, "comment": "x" * (MAX_COMMENT_LENGTH + 1)},
    {"quota_mb": MAX_QUOTA_MB + 1, "comment": "a\x07b"},
    {"comment": "a\u200bb"},
    {"comment": "a\u202eb"},
    {"password": "abc def ｘ"},
    {"password": "x" * (STRONG_MAX_LENGTH + 1)},
    {"password": "ONLY-UPPER-CASE-1"},
    {"address": BASIC_ADDRESS, "plan": "sv-basic", "password": "jiro", "quota_mb": 10},
    {"address": BASIC_ADDRESS, "plan": "sv-basic", "password": "1234567"},
    {"address": BASIC_ADDRESS, "plan": "sv-basic", "password": "jiro@example.jp"},
    {"address": BASIC_ADDRESS, "plan": "sv-basic", "password": "example.jp"},
    {"address": BASIC_ADDRESS, "plan": "sv-basic", "password": "a!b#c$d%e&f'g(h)i*j+"},
]


async def _refusals(deps, tokens, accounts) -> list[Rejected]:
    """Every rule the account's commands enforce, broken at least once."""
    replies = [await handle(create_command(tokens, **bad), deps) for bad in BAD_CREATES]
    await create(deps, tokens)
    admin, own = tokens.admin(DOMAIN), tokens.user(ADDRESS)
    replies += [
        await handle(create_command(tokens), deps),
        await handle(ChangeQuota(actor_token=admin, address=ADDRESS, quota_mb=MIN_QUOTA_MB - 1), deps),
        await handle(ChangeComment(actor_token=admin, address=ADDRESS, comment="\x00"), deps),
        await handle(ChangePassword(actor_token=own, address=ADDRESS, new_password="weak"), deps),
        await handle(GetAccount(actor_token=own, address="hanako@example.jp"), deps),
        await handle(GetAccount(actor_token="not-a-token", address=ADDRESS), deps),
        await handle(GetAccount(actor_token=admin, address="nobody@example.jp"), deps),
        await handle(ListAccounts(actor_token=admin, domain=DOMAIN, prefix="a!", limit=0, after="forged"), deps),
        await handle(ListAccounts(actor_token=admin, domain=DOMAIN, prefix="a@other.example"), deps),
    ]
    replies += [await log_in(deps, ADDRESS, WRONG) for _ in range(6)]
    return [expect_rejected(reply, reply.code) for reply in replies]


async def test_every_refusal_is_one_the_contract_documents(deps, tokens, accounts):
    """Ensure every refusal's codes are the contract's and each field error carries exactly its documented params."""
    for reply in await _refusals(deps, tokens, accounts):
        check_rejected(reply, account)


async def test_every_code_the_contract_names_is_answered(deps, tokens, accounts):
    """Ensure the contract names no field code the account service never answers (the list stays true)."""
    answered = {e.code for reply in await _refusals(deps, tokens, accounts) for e in reply.errors}

    assert answered == set(account.FIELD_CODES)


async def test_limits_travel_as_params(deps, tokens, accounts):
    """Ensure the numbers a message states are in its params, e.g. the quota's bounds and the comment's length."""
    reply = expect_rejected(await handle(create_command(tokens, quota_mb=0, comment="x" * 201), deps), "validation_failed")

    assert {e.code: e.params for e in reply.errors} == {
        "out_of_range": {"min_mb": MIN_QUOTA_MB, "max_mb": MAX_QUOTA_MB},
        "too_long": {"max_length": MAX_COMMENT_LENGTH},
    }


async def test_no_param_holds_the_password(deps, tokens, accounts):
    """Ensure a refused password's errors carry the policy's limits and symbols, never the password or its characters."""
    password = "abc def ｘ"
    reply = expect_rejected(await handle(create_command(tokens, password=password), deps), "validation_failed")

    said = [str(value) for e in reply.errors for value in e.params.values()]
    assert said and not any(part in value for value in said for part in ("abc", "def", "ｘ", " "))
    assert STRONG not in str(reply.model_dump())
