"""Accounts through their handlers (`handle(command, deps)` with the fakes from conftest.py): creating,
sizing, commenting and deleting, and every refusal changing nothing."""


import pytest

from services.account.application.handlers import complete_deletion
from services.account.application.handlers import handle as handle_command
from services.account.domain.account import Account
from shared.contracts.account import (
    AccountCreated,
    AccountDeleted,
    ChangeComment,
    ChangePassword,
    ChangeQuota,
    CommentChanged,
    CompleteDeletion,
    CreateAccount,
    DeleteAccount,
    QuotaChanged,
    RemoveHome,
)
from shared.plans import Plan
from tests.account.unit.handler_support import (
    ADDRESS,
    ADMIN_LOGIN,
    BAD_TOKENS,
    BASIC,
    BASIC_ADDRESS,
    DOMAIN,
    NEW_STRONG,
    OTHER_ADDRESS,
    OTHER_DOMAIN,
    STRONG,
    UNKNOWN_ADDRESS,
    create,
    create_command,
    expect_accepted,
    expect_rejected,
    handle,
    log_in,
    state_of,
)

# --- CreateAccount -------------------------------------------------------------------------


async def test_admin_creates_account(deps, tokens, accounts, mail_logins, clock):
    """Ensure an admin of the domain creates an account, saves AccountCreated and grants the mail login."""
    reply = await create(deps, tokens, "Taro@Example.JP", quota_mb=2048, comment="sales")

    assert reply.result == {"address": ADDRESS}
    [event] = accounts.saved_events
    assert isinstance(event, AccountCreated)
    assert (event.address, event.plan, event.quota_mb, event.comment, event.actor) == (
        ADDRESS, "business-standard", 2048, "sales", ADMIN_LOGIN)
    assert accounts.principal(ADDRESS) == Account(
        address=ADDRESS, plan=Plan.BUSINESS_STANDARD, password_hash="hash:" + STRONG, quota_mb=2048, comment="sales",
        sessions_valid_from=clock.now, home="0001", created_at=clock.now)
    assert mail_logins.logins == {ADDRESS: "hash:" + STRONG}
    assert mail_logins.quotas == {ADDRESS: 2048}


async def test_creating_an_existing_account_is_refused(deps, tokens, accounts, mail_logins):
    """Ensure creating an address that already exists is rejected with already_exists."""
    await create(deps, tokens)
    before = state_of(accounts, mail_logins)

    expect_rejected(await handle(create_command(tokens, password=NEW_STRONG), deps), "already_exists")
    assert state_of(accounts, mail_logins) == before


async def test_account_can_be_created_again_after_delete(deps, tokens, accounts, mail_logins):
    """Ensure a deleted address can be created afresh, with the new password granted."""
    await create(deps, tokens)
    expect_accepted(await handle(DeleteAccount(actor_token=tokens.admin(DOMAIN), address=ADDRESS), deps))

    await create(deps, tokens, password=NEW_STRONG)
    assert mail_logins.logins == {ADDRESS: "hash:" + NEW_STRONG}


async def test_a_recreated_address_gets_a_home_of_its_own(deps, tokens, accounts, mail_logins):
    """Ensure an address created again gets a new home (it must not inherit the previous owner's mail
    or Sieve scripts), and the old home is sent for removal once the old line is gone."""
    await create(deps, tokens)
    first_home = mail_logins.homes[ADDRESS]
    expect_accepted(await handle(DeleteAccount(actor_token=tokens.admin(DOMAIN), address=ADDRESS), deps))
    await create(deps, tokens)

    assert mail_logins.homes[ADDRESS] not in ("", first_home)
    assert [(type(w), w.address, w.home) for w in accounts.sent_work] == [(RemoveHome, ADDRESS, first_home)]


async def test_account_deleted_waits_until_the_mail_login_is_gone(deps, tokens, accounts, mail_logins):
    """Ensure a delete whose passwd write fails is accepted at once, but AccountDeleted is published
    and the home removed only once the line is gone; meanwhile the address cannot be created again,
    and a repeated completion publishes nothing twice."""
    await create(deps, tokens)
    mail_logins.failing = True

    expect_accepted(await handle_command(DeleteAccount(actor_token=tokens.admin(DOMAIN), address=ADDRESS), deps))
    early = expect_accepted(await complete_deletion(CompleteDeletion(address=ADDRESS), deps))

    assert early.result == {"completed": False} and not any(isinstance(e, AccountDeleted) for e in accounts.saved_events)
    assert ADDRESS in mail_logins.logins and accounts.principal(ADDRESS) is None and not accounts.sent_work
    expect_rejected(await handle(create_command(tokens), deps), "being_deleted")

    mail_logins.failing = False
    done = [await complete_deletion(CompleteDeletion(address=ADDRESS), deps) for _ in range(2)]

    assert [r.result for r in done] == [{"completed": True}, {"completed": False}]
    assert ADDRESS not in mail_logins.logins
    assert [type(e) for e in accounts.saved_events].count(AccountDeleted) == 1
    assert [type(w) for w in accounts.sent_work] == [RemoveHome]


async def test_user_token_cannot_create(deps, tokens, accounts, mail_logins):
    """Ensure a user token cannot create an account, not even its own address."""
    command = CreateAccount(actor_token=tokens.user(ADDRESS), address=ADDRESS, plan="kwc", initial_password=STRONG)

    expect_rejected(await handle(command, deps), "forbidden")
    assert accounts.records == {} and mail_logins.logins == {}


async def test_admin_of_another_domain_cannot_create(deps, tokens, accounts, mail_logins):
    """Ensure an admin cannot create an account outside their domains."""
    command = CreateAccount(actor_token=tokens.admin(OTHER_DOMAIN), address=ADDRESS, plan="kwc", initial_password=STRONG)

    expect_rejected(await handle(command, deps), "forbidden")
    assert accounts.records == {} and mail_logins.logins == {}


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_token_is_unauthenticated(deps, tokens, accounts, mail_logins, hasher, kind):
    """Ensure a garbage, expired, foreign, tampered or unsigned token is rejected as unauthenticated."""
    command = CreateAccount(actor_token=BAD_TOKENS[kind](tokens), address=ADDRESS, plan="kwc", initial_password=STRONG)

    reply = expect_rejected(await handle(command, deps), "unauthenticated")
    assert reply.command_id == command.message_id
    assert accounts.records == {} and mail_logins.logins == {} and hasher.hashed == []


@pytest.mark.parametrize("address", ["not-an-address", "us..er@example.jp", "user@localhost", "ü@example.jp"])
async def test_invalid_address_is_refused(deps, tokens, accounts, address):
    """Ensure an address outside the safe subset is rejected with a field error on address."""
    reply = expect_rejected(await handle(create_command(tokens, address), deps), "validation_failed")

    assert [(e.field, e.code) for e in reply.errors] == [("address", "invalid_address")]
    assert accounts.records == {}


async def test_quota_on_sv_basic_is_not_allowed(deps, tokens, accounts):
    """Ensure a quota given for an sv-basic account is rejected as not_allowed_on_plan on quota_mb."""
    command = create_command(tokens, BASIC_ADDRESS, plan="sv-basic", password=BASIC, quota_mb=1024)

    reply = expect_rejected(await handle(command, deps), "not_allowed_on_plan")
    assert [(e.field, e.code) for e in reply.errors] == [("quota_mb", "not_allowed_on_plan")]
    assert accounts.records == {}


@pytest.mark.parametrize("quota_mb", [0, -1, 1_048_577])
async def test_quota_out_of_range_is_refused(deps, tokens, accounts, quota_mb):
    """Ensure a quota outside 1..1048576 MB is rejected with out_of_range on quota_mb."""
    reply = expect_rejected(await handle(create_command(tokens, quota_mb=quota_mb), deps), "validation_failed")

    assert [(e.field, e.code) for e in reply.errors] == [("quota_mb", "out_of_range")]
    assert accounts.records == {}


@pytest.mark.parametrize(
    ("plan", "address", "password", "codes"),
    [
        ("business-standard", ADDRESS, "abc def",
         {"too_short", "forbidden_character", "missing_uppercase", "missing_digit", "missing_symbol"}),
        ("sv-basic", BASIC_ADDRESS, "jiro", {"too_short", "missing_digit", "same_as_local_part"}),
        ("sv-basic", BASIC_ADDRESS, "1234567", {"too_short", "missing_letter", "six_consecutive_digits"}),
    ],
)
async def test_weak_initial_password_lists_every_broken_rule(deps, tokens, accounts, hasher, plan, address, password, codes):
    """Ensure a weak initial password is rejected with one field error per broken rule of the plan's policy."""
    command = create_command(tokens, address, plan=plan, password=password)

    reply = expect_rejected(await handle(command, deps), "validation_failed")
    assert {e.field for e in reply.errors} == {"initial_password"}
    assert {e.code for e in reply.errors} == codes
    assert len(reply.errors) == len(codes)
    assert accounts.records == {} and hasher.hashed == []


async def test_create_reports_every_broken_field_at_once(deps, tokens, accounts):
    """Ensure a CreateAccount breaking quota, comment and password rules names all three fields in one rejection."""
    command = create_command(tokens, password="weak", quota_mb=0, comment="x" * 201)

    reply = expect_rejected(await handle(command, deps), "validation_failed")

    assert {e.field for e in reply.errors} == {"quota_mb", "comment", "initial_password"}
    assert accounts.records == {}


# --- ChangeQuota, ChangeComment, DeleteAccount ---------------------------------------------

ADMIN_ONLY = {
    "ChangeQuota": lambda token, address: ChangeQuota(actor_token=token, address=address, quota_mb=2048),
    "ChangeComment": lambda token, address: ChangeComment(actor_token=token, address=address, comment="sales"),
    "DeleteAccount": lambda token, address: DeleteAccount(actor_token=token, address=address),
}


@pytest.mark.parametrize("command_type", ADMIN_ONLY)
async def test_user_cannot_run_admin_only_commands_on_own_account(deps, tokens, accounts, mail_logins, command_type):
    """Ensure a user is forbidden to change quota, comment or delete, even on their own address."""
    await create(deps, tokens)
    before = state_of(accounts, mail_logins)

    expect_rejected(await handle(ADMIN_ONLY[command_type](tokens.user(ADDRESS), ADDRESS), deps), "forbidden")
    assert state_of(accounts, mail_logins) == before


@pytest.mark.parametrize("command_type", ADMIN_ONLY)
async def test_admin_only_commands_on_unknown_account_are_not_found(deps, tokens, accounts, command_type):
    """Ensure quota, comment and delete on an address that does not exist are rejected with not_found."""
    expect_rejected(await handle(ADMIN_ONLY[command_type](tokens.admin(DOMAIN), UNKNOWN_ADDRESS), deps), "not_found")
    assert accounts.records == {}


async def test_admin_changes_quota(deps, tokens, accounts):
    """Ensure an admin changes the quota and QuotaChanged carries the previous value."""
    await create(deps, tokens, quota_mb=1024)

    expect_accepted(await handle(ChangeQuota(actor_token=tokens.admin(DOMAIN), address=ADDRESS, quota_mb=4096), deps))

    event = accounts.saved_events[-1]
    assert isinstance(event, QuotaChanged)
    assert (event.quota_mb, event.previous_quota_mb, event.actor) == (4096, 1024, ADMIN_LOGIN)
    assert accounts.principal(ADDRESS).quota_mb == 4096


async def test_quota_change_on_sv_basic_is_refused(deps, tokens, accounts, mail_logins):
    """Ensure changing the quota of an sv-basic account is rejected as not_allowed_on_plan."""
    await create(deps, tokens, BASIC_ADDRESS, plan="sv-basic", password=BASIC)
    before = state_of(accounts, mail_logins)

    command = ChangeQuota(actor_token=tokens.admin(DOMAIN), address=BASIC_ADDRESS, quota_mb=2048)
    reply = expect_rejected(await handle(command, deps), "not_allowed_on_plan")

    assert [(e.field, e.code) for e in reply.errors] == [("quota_mb", "not_allowed_on_plan")]
    assert state_of(accounts, mail_logins) == before


async def test_admin_changes_comment(deps, tokens, accounts):
    """Ensure an admin changes the comment and CommentChanged is saved."""
    await create(deps, tokens)

    expect_accepted(await handle(ChangeComment(actor_token=tokens.admin(DOMAIN), address=ADDRESS, comment="営業部"), deps))

    event = accounts.saved_events[-1]
    assert isinstance(event, CommentChanged) and (event.comment, event.actor) == ("営業部", ADMIN_LOGIN)
    assert accounts.principal(ADDRESS).comment == "営業部"


@pytest.mark.parametrize(
    ("comment", "code"),
    [("x" * 201, "too_long"), ("line\nbreak", "control_character"), ("bell\x07", "control_character"),
     ("del\x7f", "control_character"), ("next line\u0085", "control_character"), ("csi\u009b2J", "control_character"),
     ("invoice\u202egpj.exe", "bidi_control"), ("isolate\u2066x\u2069", "bidi_control"),
     ("line\u2028separator", "invisible_character"), ("zero\u200bwidth", "invisible_character")],
)
async def test_bad_comment_is_refused(deps, tokens, accounts, mail_logins, comment, code):
    """Ensure a comment over 200 characters, with C0 or C1 control characters or with text-direction controls
    is rejected on the comment field."""
    await create(deps, tokens, comment="kept")
    before = state_of(accounts, mail_logins)

    reply = await handle(ChangeComment(actor_token=tokens.admin(DOMAIN), address=ADDRESS, comment=comment), deps)

    assert [(e.field, e.code) for e in expect_rejected(reply, "validation_failed").errors] == [("comment", code)]
    assert state_of(accounts, mail_logins) == before


async def test_delete_revokes_mail_login_and_sign_in(deps, tokens, accounts, mail_logins, audit):
    """Ensure deleting an account revokes its mail login and a later Login fails with invalid_credentials."""
    await create(deps, tokens)
    await create(deps, tokens, OTHER_ADDRESS)
    expect_accepted(await log_in(deps, ADDRESS, STRONG))

    expect_accepted(await handle(DeleteAccount(actor_token=tokens.admin(DOMAIN), address=ADDRESS), deps))

    event = accounts.saved_events[-1]
    assert isinstance(event, AccountDeleted) and (event.address, event.actor) == (ADDRESS, ADMIN_LOGIN)
    assert accounts.principal(ADDRESS) is None
    assert mail_logins.logins == {OTHER_ADDRESS: "hash:" + STRONG}
    expect_rejected(await log_in(deps, ADDRESS, STRONG), "invalid_credentials")
    assert [(e.login, e.reason) for e in audit.events] == [("[unknown login]", "invalid_credentials")]


REJECTIONS = {
    "create_existing": (lambda t: create_command(t, password=NEW_STRONG), "already_exists"),
    "create_by_user": (lambda t: CreateAccount(actor_token=t.user(ADDRESS), address=UNKNOWN_ADDRESS, plan="kwc",
                                               initial_password=STRONG), "forbidden"),
    "create_other_domain": (lambda t: CreateAccount(actor_token=t.admin(OTHER_DOMAIN), address=UNKNOWN_ADDRESS,
                                                    plan="kwc", initial_password=STRONG), "forbidden"),
    "create_bad_token": (lambda t: CreateAccount(actor_token="x", address=UNKNOWN_ADDRESS, plan="kwc",
                                                 initial_password=STRONG), "unauthenticated"),
    "create_bad_address": (lambda t: create_command(t, "a..b@example.jp"), "validation_failed"),
    "create_basic_quota": (lambda t: create_command(t, UNKNOWN_ADDRESS, plan="sv-basic", password=BASIC, quota_mb=5),
                           "not_allowed_on_plan"),
    "create_weak_password": (lambda t: create_command(t, UNKNOWN_ADDRESS, password="weak"), "validation_failed"),
    "create_long_comment": (lambda t: create_command(t, UNKNOWN_ADDRESS, comment="x" * 201), "validation_failed"),
    "password_other_user": (lambda t: ChangePassword(actor_token=t.user(OTHER_ADDRESS), address=ADDRESS,
                                                     new_password=NEW_STRONG), "forbidden"),
    "password_other_domain": (lambda t: ChangePassword(actor_token=t.admin(OTHER_DOMAIN), address=ADDRESS,
                                                       new_password=NEW_STRONG), "forbidden"),
    "password_weak": (lambda t: ChangePassword(actor_token=t.user(ADDRESS), address=ADDRESS, new_password="weak"),
                      "validation_failed"),
    "password_expired_token": (lambda t: ChangePassword(actor_token=t.expired(DOMAIN), address=ADDRESS,
                                                        new_password=NEW_STRONG), "unauthenticated"),
    "quota_by_user": (lambda t: ADMIN_ONLY["ChangeQuota"](t.user(ADDRESS), ADDRESS), "forbidden"),
    "quota_basic": (lambda t: ADMIN_ONLY["ChangeQuota"](t.admin(DOMAIN), BASIC_ADDRESS), "not_allowed_on_plan"),
    "quota_zero": (lambda t: ChangeQuota(actor_token=t.admin(DOMAIN), address=ADDRESS, quota_mb=0), "validation_failed"),
    "comment_by_user": (lambda t: ADMIN_ONLY["ChangeComment"](t.user(ADDRESS), ADDRESS), "forbidden"),
    "comment_control": (lambda t: ChangeComment(actor_token=t.admin(DOMAIN), address=ADDRESS, comment="a\tb"),
                        "validation_failed"),
    "delete_by_user": (lambda t: ADMIN_ONLY["DeleteAccount"](t.user(ADDRESS), ADDRESS), "forbidden"),
    "delete_other_domain": (lambda t: ADMIN_ONLY["DeleteAccount"](t.admin(OTHER_DOMAIN), ADDRESS), "forbidden"),
    "delete_unknown": (lambda t: ADMIN_ONLY["DeleteAccount"](t.admin(DOMAIN), UNKNOWN_ADDRESS), "not_found"),
}


@pytest.mark.parametrize("case", REJECTIONS)
async def test_rejection_changes_nothing(deps, tokens, accounts, mail_logins, hasher, audit, case):
    """Ensure a rejected command saves no state, no event, hashes nothing and leaves mail logins alone."""
    await create(deps, tokens)
    await create(deps, tokens, OTHER_ADDRESS)
    await create(deps, tokens, BASIC_ADDRESS, plan="sv-basic", password=BASIC)
    before, hashed_before = state_of(accounts, mail_logins), list(hasher.hashed)
    build, code = REJECTIONS[case]
    command = build(tokens)

    reply = expect_rejected(await handle(command, deps), code)

    assert reply.command_id == command.message_id
    assert state_of(accounts, mail_logins) == before
    assert hasher.hashed == hashed_before and audit.events == []
