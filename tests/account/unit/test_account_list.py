"""ListAccounts through its handler and each domain's directory (fakes from conftest.py): an admin of the
domain pages through its accounts, sorted, searched by prefix, those being deleted shown as such;
nobody else, and no cursor leads out of the domain."""

import base64
import random
from dataclasses import replace

import pytest

from services.account.application.directory import record_in_directory
from services.account.application.handlers import complete_deletion
from services.account.application.handlers import handle as handle_alone
from services.account.domain.account import Admin
from services.account.domain.directory import MAX_LINES, MIN_LINES, Line
from services.account.messages import RecordInDirectory
from shared.contracts.account import (
    ChangeComment,
    ChangePassword,
    CompleteDeletion,
    CreateAccount,
    DeleteAccount,
    ListAccounts,
)
from tests.account.unit.handler_support import (
    BAD_TOKENS,
    DOMAIN,
    NEW_STRONG,
    OTHER_DOMAIN,
    STRONG,
    expect_accepted,
    expect_rejected,
    handle,
    to_directory,
)


async def create(deps, tokens, address, *, plan="business-standard", password=STRONG, **fields) -> None:
    """As an admin of both test domains."""
    expect_accepted(await handle(CreateAccount(actor_token=tokens.admin(DOMAIN, OTHER_DOMAIN), address=address, plan=plan,
                                               initial_password=password, **fields), deps))


def listing(tokens, domain=DOMAIN, **asked) -> ListAccounts:
    return ListAccounts(actor_token=tokens.admin(DOMAIN, OTHER_DOMAIN), domain=domain, **asked)


async def every_page(deps, tokens, domain=DOMAIN, **asked) -> list[list[str]]:
    pages, after = [], None
    while True:
        result = expect_accepted(await handle(listing(tokens, domain, after=after, **asked), deps)).result
        pages.append([account["address"] for account in result["accounts"]])
        if (after := result["next"]) is None:
            return pages


async def test_an_admin_sees_its_domains_accounts_sorted_with_what_the_list_shows(deps, tokens, clock):
    """Ensure the list shows address, plan, quota, comment, creation time and state, sorted, per domain."""
    await create(deps, tokens, "taro@example.jp", quota_mb=2048, comment="営業部")
    await create(deps, tokens, "hanako@example.jp", plan="sv-basic", password="basic123x")
    await create(deps, tokens, "jiro@example.com", plan="kwc")

    result = expect_accepted(await handle(listing(tokens), deps)).result

    assert result == {"next": None, "accounts": [
        {"address": "hanako@example.jp", "plan": "sv-basic", "quota_mb": None, "comment": "",
         "created_at": clock.now.isoformat(), "state": "active"},
        {"address": "taro@example.jp", "plan": "business-standard", "quota_mb": 2048, "comment": "営業部",
         "created_at": clock.now.isoformat(), "state": "active"}]}
    other = expect_accepted(await handle(listing(tokens, "Example.COM"), deps)).result
    assert [account["address"] for account in other["accounts"]] == ["jiro@example.com"]


async def test_a_user_or_another_domains_admin_is_refused(deps, tokens, admins):
    """Ensure only a current admin of the domain may list it: users, other admins and bad tokens are refused."""
    await create(deps, tokens, "taro@example.jp")

    for token in (tokens.user("taro@example.jp"), tokens.admin(OTHER_DOMAIN), tokens.admin(DOMAIN, login="ghost")):
        reply = await handle(ListAccounts(actor_token=token, domain=DOMAIN), deps)
        assert reply.status == "rejected" and reply.code in ("forbidden", "unauthenticated"), reply
    expect_rejected(await handle(ListAccounts(actor_token=tokens.user("taro@example.jp"), domain=DOMAIN), deps), "forbidden")
    expect_rejected(await handle(ListAccounts(actor_token=tokens.admin(OTHER_DOMAIN), domain=DOMAIN), deps), "forbidden")
    for bad in BAD_TOKENS.values():
        expect_rejected(await handle(ListAccounts(actor_token=bad(tokens), domain=DOMAIN), deps), "unauthenticated")
    admins.stored["root"] = replace(admins.stored["root"], domains=frozenset({OTHER_DOMAIN}))
    expect_rejected(await handle(listing(tokens), deps), "forbidden")


async def test_pages_follow_each_other_to_the_end(deps, tokens):
    """Ensure paging with `next` shows every account once, in order, and the last page has no `next`."""
    addresses = [f"user{n:02d}@example.jp" for n in range(7)]
    for address in random.sample(addresses, len(addresses)):
        await create(deps, tokens, address)

    assert await every_page(deps, tokens, limit=3) == [addresses[0:3], addresses[3:6], addresses[6:]]
    assert await every_page(deps, tokens, limit=7) == [addresses]


async def test_a_search_shows_the_addresses_that_start_with_it(deps, tokens):
    """Ensure a prefix of the name or of the whole address finds those accounts, in any case, and pages too."""
    for address in ("taro@example.jp", "tarou@example.jp", "tama@example.jp", "hanako@example.jp", "taro@example.com"):
        await create(deps, tokens, address)

    assert await every_page(deps, tokens, prefix="TA") == [["tama@example.jp", "taro@example.jp", "tarou@example.jp"]]
    assert await every_page(deps, tokens, prefix="taro", limit=1) == [["taro@example.jp"], ["tarou@example.jp"]]
    assert await every_page(deps, tokens, prefix="taro@example.jp") == [["taro@example.jp"]]
    assert await every_page(deps, tokens, prefix="zed") == [[]]


async def test_what_the_list_cannot_give_is_refused_all_at_once(deps, tokens):
    """Ensure a bad page size, search and cursor are each named in one `validation_failed` reply."""
    reply = expect_rejected(await handle(listing(tokens, limit=0, prefix="ta ro", after="!!"), deps), "validation_failed")

    assert {(error.field, error.code) for error in reply.errors} == {
        ("limit", "page_size"), ("prefix", "invalid_characters"), ("after", "invalid_cursor")}
    for limit in (101, -1):
        expect_rejected(await handle(listing(tokens, limit=limit), deps), "validation_failed")
    outside = expect_rejected(await handle(listing(tokens, prefix="taro@example.com"), deps), "validation_failed")
    assert [(error.field, error.code) for error in outside.errors] == [("prefix", "other_domain")]


async def test_a_cursor_never_leads_to_another_domain(deps, tokens):
    """Ensure a cursor of another domain, or one rewritten to name another domain's address, is refused."""
    for address in ("a@example.jp", "b@example.jp", "a@example.com", "b@example.com"):
        await create(deps, tokens, address)
    foreign = expect_accepted(await handle(listing(tokens, OTHER_DOMAIN, limit=1), deps)).result["next"]

    forged = [foreign, _cursor("example.jp a@example.com"), _cursor("example.com a@example.com"),
              _cursor("example.jp"), foreign[:-2]]
    for cursor in forged:
        reply = expect_rejected(await handle(listing(tokens, after=cursor), deps), "validation_failed")
        assert [(error.field, error.code) for error in reply.errors] == [("after", "invalid_cursor")]
    own = _cursor("example.jp a@example.jp")
    assert expect_accepted(await handle(listing(tokens, after=own), deps)).result["accounts"][0]["address"] == "b@example.jp"


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_an_account_being_deleted_is_shown_as_such_then_goes(deps, tokens):
    """Ensure a deleted account is listed as `deleting` until its mail login is gone, then not at all."""
    await create(deps, tokens, "taro@example.jp")
    await create(deps, tokens, "hanako@example.jp")

    # the delete alone: its mail login is not gone yet, so the deletion is under way
    expect_accepted(await handle_alone(DeleteAccount(actor_token=tokens.admin(DOMAIN), address="taro@example.jp"), deps))
    await to_directory(deps.accounts)
    shown = expect_accepted(await handle(listing(tokens), deps)).result["accounts"]
    assert [(a["address"], a["state"], a["plan"]) for a in shown] == [
        ("hanako@example.jp", "active", "business-standard"), ("taro@example.jp", "deleting", "business-standard")]

    expect_accepted(await complete_deletion(CompleteDeletion(address="taro@example.jp"), deps))
    await to_directory(deps.accounts)
    assert await every_page(deps, tokens) == [["hanako@example.jp"]]


async def test_changes_show_and_sign_ins_change_nothing(deps, tokens):
    """Ensure a comment change shows in the list, and a password change leaves the line as it was."""
    await create(deps, tokens, "taro@example.jp")
    expect_accepted(await handle(ChangeComment(actor_token=tokens.admin(DOMAIN), address="taro@example.jp",
                                               comment="経理"), deps))
    expect_accepted(await handle(ChangePassword(actor_token=tokens.admin(DOMAIN), address="taro@example.jp",
                                                new_password=NEW_STRONG), deps))

    [shown] = expect_accepted(await handle(listing(tokens), deps)).result["accounts"]
    assert shown["comment"] == "経理" and shown["state"] == "active"


async def test_an_older_or_repeated_line_changes_nothing(deps, tokens):
    """Ensure a redelivered line, or one older than the line kept, leaves the directory as it is."""
    await create(deps, tokens, "taro@example.jp", comment="first")
    await handle(ChangeComment(actor_token=tokens.admin(DOMAIN), address="taro@example.jp", comment="second"), deps)
    old = RecordInDirectory(domain=DOMAIN, address="taro@example.jp", version=1, plan="kwc", comment="first")
    stale_removal = RecordInDirectory(domain=DOMAIN, address="taro@example.jp", version=1, gone=True)

    for change in (old, old, stale_removal):
        await record_in_directory(change, deps.accounts.directories)

    [shown] = expect_accepted(await handle(listing(tokens), deps)).result["accounts"]
    assert (shown["comment"], shown["plan"]) == ("second", "business-standard")


async def test_a_directory_missing_is_built_from_the_accounts(deps, tokens, accounts):
    """Ensure accounts made before the directory was kept are listed: the first list builds it."""
    for n in range(5):
        await create(deps, tokens, f"old{n}@example.jp")
    accounts.directory.indexes.clear()
    accounts.directory.chunks.clear()

    assert await every_page(deps, tokens, limit=2) == [["old0@example.jp", "old1@example.jp"],
                                                       ["old2@example.jp", "old3@example.jp"], ["old4@example.jp"]]


@pytest.mark.parametrize("count", [1_000])
async def test_a_deep_page_costs_what_the_first_does(deps, tokens, accounts, count):
    """Ensure chunks stay within their bounds as accounts come and go in any order, and any page reads at
    most three chunks, however deep."""
    addresses = [f"u{n:05d}@example.jp" for n in range(count)]
    for version, address in enumerate(random.sample(addresses, count), start=1):
        await record_in_directory(_line(address, version), accounts.directories)
    await _check_chunks(accounts, addresses)

    for after in (None, addresses[count // 2], addresses[-60]):
        accounts.directory.chunk_reads = 0
        cursor = None if after is None else _cursor(f"example.jp {after}")
        page = expect_accepted(await handle(listing(tokens, after=cursor, limit=100), deps)).result["accounts"]
        assert len(page) == min(100, count - (addresses.index(after) + 1 if after else 0))
        assert accounts.directory.chunk_reads <= 3

    kept = addresses[::10]
    for address in random.sample(addresses, count):
        if address not in kept:
            await record_in_directory(RecordInDirectory(domain=DOMAIN, address=address, version=count + 1, gone=True),
                                      accounts.directories)
    await _check_chunks(accounts, kept)


def _line(address: str, version: int) -> RecordInDirectory:
    return RecordInDirectory(domain=DOMAIN, address=address, version=version, plan="kwc")


async def _check_chunks(accounts, addresses: list[str]) -> None:
    index = accounts.directory.indexes[DOMAIN]
    held: list[Line] = []
    for position, (_, chunk_id) in enumerate(index.chunks):
        lines = index.within(position, accounts.directory.chunks[DOMAIN, chunk_id])
        assert lines == accounts.directory.chunks[DOMAIN, chunk_id]
        assert len(lines) <= MAX_LINES and (len(index.chunks) == 1 or len(lines) >= MIN_LINES)
        held += lines
    assert [line.address for line in held] == addresses
    assert {key for key in accounts.directory.chunks if key[0] == DOMAIN} == {(DOMAIN, c) for _, c in index.chunks}


async def test_admins_are_never_listed(deps, tokens, accounts):
    """Ensure an admin (a login without @) is not an account of any domain's list."""
    await accounts.save("root", Admin(login="root", password_hash="hash:" + STRONG, domains=frozenset({DOMAIN})),
                        events=[])
    await to_directory(accounts)

    assert await every_page(deps, tokens) == [[]]
