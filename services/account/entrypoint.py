"""The account service for the kit: its spec and its one composition root."""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from services.account.adapters.argon2_hasher import Argon2Hasher
from services.account.adapters.dovecot_passwd import DovecotPasswdFiles
from services.account.adapters.passwd_reconciler import MailLoginReconciler
from services.account.adapters.stored_accounts import AccountsInUnit, StoredAdmins, StoredPrincipals, principal_of
from services.account.application.first_admin import set_first_admin
from services.account.application.handlers import Deps, follow_mail_login, handle
from services.account.application.tombstones import forget_deleted_account, tombstones_due
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
from shared.contracts.base import Reply
from shared.messaging.broker import EventPublisher
from shared.messaging.commands import Handler
from shared.messaging.service import Resources, ServiceSpec, Sweep, Wiring
from shared.messaging.unit_of_work import AggregateReader, Doc, UnitOfWork

log = logging.getLogger(__name__)

AGGREGATES = "accounts"
CLIENT_COMMANDS = (CreateAccount, DeleteAccount, ChangeQuota, ChangeComment, ChangePassword, Login)


def compose(settings: AccountSettings, kit: Resources) -> Wiring:
    reader = AggregateReader(kit.database[AGGREGATES])
    stored, passwd_files = StoredPrincipals(reader), DovecotPasswdFiles(settings.dovecot_passwd_dir)
    deps = _deps(settings, kit, StoredAdmins(stored), passwd_files)
    reconciler = MailLoginReconciler(files=passwd_files, every=stored.every, stored=stored.one,
                                     interval_s=settings.passwd_reconcile_interval_s)

    def in_unit(handler: Callable[..., Awaitable[Reply]]) -> Handler:
        async def handle_in(command: Any, unit: UnitOfWork) -> Reply:
            return await handler(command, replace(deps, accounts=AccountsInUnit(unit)))
        return handle_in

    async def follow(key: str, state: Doc | None) -> None:
        try:
            await follow_mail_login(key, principal_of(key, state), passwd_files)
        except OSError as error:  # the database is the truth: the reconciler brings the file in line
            log.warning("passwd write for %s failed (%s); the reconciler takes over", key, error.strerror)
            reconciler.soon(key)

    handlers: dict[type, Handler] = {kind: in_unit(handle) for kind in CLIENT_COMMANDS}
    handlers[ForgetDeletedAccount] = in_unit(forget_deleted_account)
    if first_admin := settings.first_admin:
        handlers[SetFirstAdmin] = in_unit(partial(set_first_admin, wanted=first_admin))
    due = partial(tombstones_due, stored.deleted_before, retention=settings.tombstone_retention)
    return Wiring(
        handlers=handlers, aggregates=AGGREGATES, follow=follow, background=(reconciler.run,),
        startup=(SetFirstAdmin(login=first_admin.login),) if first_admin else (),
        sweeps=(Sweep(settings.tombstone_sweep_interval_s, lambda: due(now=datetime.now(UTC))),),
    )


def _deps(settings: AccountSettings, kit: Resources, admins: StoredAdmins, passwd_files: DovecotPasswdFiles) -> Deps:
    hasher = Argon2Hasher(settings.argon2)
    return Deps(
        accounts=AccountsInUnit.outside_any_turn(), admins=admins, hasher=hasher, audit=EventPublisher(kit.broker),
        mail_logins=passwd_files,
        issuer=TokenIssuer(load_private_key(settings.session_private_key.get_secret_value()),
                           timedelta(minutes=settings.session_lifetime_minutes)),
        verifier=TokenVerifier(load_public_key(settings.session_public_key)),
        clock=partial(datetime.now, UTC), lockout=settings.lockout,
        dummy_hash=hasher.hash_now("dummy password never used"),
    )


SPEC = ServiceSpec(
    name=SERVICE, settings=AccountSettings, commands=(*CLIENT_COMMANDS, SetFirstAdmin, ForgetDeletedAccount),
    compose=compose,
    keeps_sessions=False,  # the account service holds the truth about sessions itself
)
