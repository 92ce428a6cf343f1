"""The account handlers, driven through `handle(command, deps)` with the fakes from conftest.py."""

import base64
import json
import uuid
from dataclasses import replace
from datetime import timedelta

import jwt
import pytest

from services.account.application.handlers import complete_deletion, follow_mail_login
from services.account.application.handlers import handle as handle_command
from services.account.domain.account import Account, Admin, SignInState
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
    Login,
    LoginFailed,
    LoginSucceeded,
    PasswordChanged,
    QuotaChanged,
    RemoveHome,
)
from shared.contracts.base import Accepted, Rejected
from shared.plans import Plan

DOMAIN = "example.jp"
OTHER_DOMAIN = "example.com"
ADDRESS = "taro@example.jp"
OTHER_ADDRESS = "hanako@example.jp"
BASIC_ADDRESS = "jiro@example.jp"
UNKNOWN_ADDRESS = "nobody@example.jp"

STRONG = "Str0ng-Passw0rd!"
NEW_STRONG = "An0ther-Secret#9"
BASIC = "basic123x"
WRONG = "Wr0ng-Guess!!x"
ADMIN_LOGIN, ADMIN_PASSWORD = "root", "Adm1n-Secret!xyz"


async def handle(command, deps):
    """As the kit runs a command: the handler, then, once its state is written, the mail server follows."""
    saves_before = len(deps.accounts.saved_keys)
    reply = await handle_command(command, deps)
    if len(deps.accounts.saved_keys) > saves_before:
        key = deps.accounts.saved_keys[-1]
        await follow_mail_login(key, deps.accounts.principal(key), deps.mail_logins)
        if await deps.accounts.pending_deletion(key):  # the follow of a delete sends CompleteDeletion
            await complete_deletion(CompleteDeletion(address=key), deps)
    return reply


def expect_rejected(reply: Accepted | Rejected, code: str) -> Rejected:
    assert isinstance(reply, Rejected), reply
    assert reply.code == code, reply
    return reply


def expect_accepted(reply: Accepted | Rejected) -> Accepted:
    assert isinstance(reply, Accepted), reply
    return reply


def state_of(accounts, mail_logins):
    return accounts.snapshot(), dict(mail_logins.logins)


def create_command(tokens, address=ADDRESS, *, plan="business-standard", password=STRONG, **fields) -> CreateAccount:
    return CreateAccount(actor_token=tokens.admin(DOMAIN), address=address, plan=plan, initial_password=password, **fields)


async def create(deps, tokens, address=ADDRESS, **kwargs) -> Accepted:
    return expect_accepted(await handle(create_command(tokens, address, **kwargs), deps))


async def log_in(deps, login: str, password: str) -> Accepted | Rejected:
    return await handle(Login(login=login, password=password), deps)


async def seed_admin(accounts, domains=(DOMAIN, OTHER_DOMAIN)) -> None:
    admin = Admin(login=ADMIN_LOGIN, password_hash="hash:" + ADMIN_PASSWORD, domains=frozenset(domains))
    await accounts.save(ADMIN_LOGIN, admin, events=[])


def tampered(token: str) -> str:
    """The user's own token with its claims rewritten to admin, signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(role="admin", domains=[DOMAIN])
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


BAD_TOKENS = {
    "garbage": lambda tokens: "not-a-token",
    "expired": lambda tokens: tokens.expired(DOMAIN),
    "signed_by_another_key": lambda tokens: tokens.signed_by_stranger(DOMAIN),
    "tampered_claims": lambda tokens: tampered(tokens.user(ADDRESS)),
    "unsigned_alg_none": lambda tokens: jwt.encode(
        {"iss": "mail-self-service/account", "sub": "root", "role": "admin", "domains": [DOMAIN],
         "iat": 0, "exp": 4_000_000_000}, None, algorithm="none"),
}


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
        sessions_valid_from=clock.now, home="0001")
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
