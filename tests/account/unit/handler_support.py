"""Helpers for the account handlers' unit tests: `handle` as the kit runs a command, and the data
they share (the fakes are in conftest.py)."""

import base64
import json

import jwt

from services.account.application.directory import list_accounts, record_in_directory
from services.account.application.handlers import complete_deletion, follow_mail_login
from services.account.application.handlers import handle as handle_command
from services.account.domain.account import Admin
from shared.contracts.account import (
    CompleteDeletion,
    CreateAccount,
    ListAccounts,
    Login,
)
from shared.contracts.base import Accepted, Rejected

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
    """As the kit runs a command: the handler, then, once its state is written, the mail server follows,
    and the lines it staged reach the domain's directory."""
    if isinstance(command, ListAccounts):
        return await list_accounts(command, deps, directories=deps.accounts.directories)
    saves_before = len(deps.accounts.saved_keys)
    reply = await handle_command(command, deps)
    if len(deps.accounts.saved_keys) > saves_before:
        key = deps.accounts.saved_keys[-1]
        await follow_mail_login(key, deps.accounts.principal(key), deps.mail_logins)
        if await deps.accounts.pending_deletion(key):  # the follow of a delete sends CompleteDeletion
            await complete_deletion(CompleteDeletion(address=key), deps)
    await to_directory(deps.accounts)
    return reply


async def to_directory(accounts) -> None:
    """The relay and the domain's turn: every staged line, in order."""
    while accounts.to_directory:
        await record_in_directory(accounts.to_directory.pop(0), accounts.directories)


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
