"""The account service for the kit: its spec and its one composition root."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from services.account.adapters.argon2_hasher import Argon2Hasher
from services.account.adapters.dovecot_passwd import DovecotPasswdFiles
from services.account.adapters.passwd_reconciler import MailLoginReconciler
from services.account.adapters.stored_accounts import AccountsInUnit, StoredAdmins, principal_of
from services.account.application.first_admin import FirstAdmin, set_first_admin
from services.account.application.handlers import Deps, follow_mail_login, handle
from services.account.application.ports import Principal
from services.account.application.tombstones import forget_deleted_account
from services.account.settings import AccountSettings
from shared.auth import TokenIssuer, TokenVerifier, load_private_key, load_public_key
from shared.contracts.account import (
    SERVICE,
    ChangeComment,
    ChangePassword,
    ChangeQuota,
    CreateAccount,
    DeleteAccount,
    ForgetDeletedAccount,
    Login,
    SetFirstAdmin,
)
from shared.contracts.base import InternalCommand, Reply
from shared.messaging.broker import EventPublisher, publish
from shared.messaging.commands import Handler
from shared.messaging.service import Resources, ServiceSpec, Wiring
from shared.messaging.unit_of_work import AggregateReader, Doc, UnitOfWork
from shared.topology import internal_exchange

log = logging.getLogger(__name__)

AGGREGATES = "accounts"
CLIENT_COMMANDS = (CreateAccount, DeleteAccount, ChangeQuota, ChangeComment, ChangePassword, Login)


def compose(settings: AccountSettings, kit: Resources) -> Wiring:
    reader = AggregateReader(kit.database[AGGREGATES])
    passwd_files = DovecotPasswdFiles(settings.dovecot_passwd_dir)
    deps = _deps(settings, kit, reader, passwd_files)
    first_admin = _first_admin(settings)

    def in_unit(handler: Callable[..., Awaitable[Reply]]) -> Callable[[Any, UnitOfWork], Awaitable[Reply]]:
        async def handle_in(command: Any, unit: UnitOfWork) -> Reply:
            return await handler(command, replace(deps, accounts=AccountsInUnit(unit)))
        return handle_in

    reconciler = MailLoginReconciler(
        files=passwd_files, every=lambda: _every_principal(reader), stored=lambda key: _principal(reader, key),
        interval_s=settings.passwd_reconcile_interval_s)

    async def follow(key: str, state: Doc | None) -> None:
        try:
            await follow_mail_login(key, principal_of(key, state), passwd_files)
        except OSError as error:  # the database is the truth: the reconciler brings the file in line
            log.warning("passwd write for %s failed (%s); the reconciler takes over", key, error.strerror)
            reconciler.soon(key)

    handlers: dict[type, Handler] = {kind: in_unit(handle) for kind in CLIENT_COMMANDS}
    handlers[ForgetDeletedAccount] = in_unit(forget_deleted_account)
    startup: Sequence[InternalCommand] = ()
    if first_admin:
        handlers[SetFirstAdmin] = in_unit(partial(set_first_admin, wanted=first_admin))
        startup = (SetFirstAdmin(login=first_admin.login),)
    return Wiring(handlers=handlers, aggregates=AGGREGATES, follow=follow, startup=startup,
                  background=(reconciler.run, partial(_sweep_tombstones, settings, kit, reader)))


async def _principal(reader: AggregateReader, key: str) -> Principal | None:
    return principal_of(key, await reader.peek(key))


async def _sweep_tombstones(settings: AccountSettings, kit: Resources, reader: AggregateReader) -> None:
    """Every TOMBSTONE_SWEEP_INTERVAL_S, each tombstone past its retention is sent, as its own
    internal command, to the account's shard to be forgotten there."""
    while True:
        await asyncio.sleep(settings.tombstone_sweep_interval_s)
        cutoff = datetime.now(UTC) - timedelta(days=settings.tombstone_retention_days)
        try:
            for address in await reader.keys_where({"deleted": True, "updated_at": {"$lt": cutoff}}):
                command = ForgetDeletedAccount(address=address, deleted_before=cutoff)
                await publish(kit.broker, command.model_dump_json().encode(), exchange=internal_exchange(SERVICE),
                              routing_key=SERVICE, key=command.subject_key(), message_id=str(command.message_id))
        except Exception:  # the next round tries again
            log.exception("tombstone sweep failed")


async def _every_principal(reader: AggregateReader) -> dict[str, Principal | None]:
    return {key: principal_of(key, state) for key, state in (await reader.every()).items()}


def _deps(settings: AccountSettings, kit: Resources, reader: AggregateReader, passwd_files: DovecotPasswdFiles) -> Deps:
    hasher = Argon2Hasher(settings.argon2)
    return Deps(
        accounts=AccountsInUnit.outside_any_turn(), admins=StoredAdmins(reader),
        hasher=hasher, audit=EventPublisher(kit.broker), mail_logins=passwd_files,
        issuer=TokenIssuer(load_private_key(settings.session_private_key.get_secret_value()),
                           timedelta(minutes=settings.session_lifetime_minutes)),
        verifier=TokenVerifier(load_public_key(settings.session_public_key)),
        clock=partial(datetime.now, UTC), lockout=settings.lockout,
        dummy_hash=hasher.hash_now("dummy password never used"),
    )


def _first_admin(settings: AccountSettings) -> FirstAdmin | None:
    login, password = settings.bootstrap_admin_login, settings.bootstrap_admin_password
    if not (login and password):
        return None
    domains = frozenset(d.lower() for d in settings.bootstrap_admin_domains)
    return FirstAdmin(login=login.lower(), password=password.get_secret_value(), domains=domains)


SPEC = ServiceSpec(
    name=SERVICE, settings=AccountSettings, commands=(*CLIENT_COMMANDS, SetFirstAdmin, ForgetDeletedAccount),
    compose=compose,
    keeps_sessions=False,  # the account service holds the truth about sessions itself
)
