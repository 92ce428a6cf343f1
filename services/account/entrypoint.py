"""The account service for the kit: its spec and its one composition root."""

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

from services.account.adapters.argon2_hasher import Argon2Hasher
from services.account.adapters.dovecot_passwd import DovecotPasswdFiles
from services.account.adapters.mail_homes import MailHomes, OrphanHomeSweeper, new_home_id
from services.account.adapters.passwd_reconciler import MailLoginReconciler
from services.account.adapters.policy_server import policy_server_for
from services.account.adapters.postfix_maps import PostfixMaps
from services.account.adapters.stored_accounts import (
    AccountsInUnit,
    StoredAdmins,
    StoredPrincipals,
    pending_deletion_of,
    principal_of,
)
from services.account.adapters.stored_directory import COLLECTION as DIRECTORY
from services.account.adapters.stored_directory import AccountsToList, StoredDirectory
from services.account.application.directory import Directories, list_accounts, record_in_directory
from services.account.application.first_admin import set_first_admin
from services.account.application.handlers import Deps, complete_deletion, follow_mail_login, handle
from services.account.application.sessions import SESSION_HANDLERS
from services.account.application.tombstones import forget_deleted_account, tombstones_due
from services.account.domain.guessing import FailureCounters
from services.account.messages import RecordInDirectory
from services.account.settings import AccountSettings
from shared.auth import TokenIssuer, load_private_key
from shared.contracts.account import (
    CLIENT_COMMANDS,
    SERVICE,
    CompleteDeletion,
    ForgetDeletedAccount,
    ListAccounts,
    RemoveHome,
    SetFirstAdmin,
)
from shared.messaging.service import Resources, ServiceSpec, Sweep, Wiring, over_unit, over_units
from shared.messaging.unit_of_work import AggregateReader, Doc

log = logging.getLogger(__name__)

AGGREGATES = "accounts"


def compose(settings: AccountSettings, kit: Resources) -> Wiring:
    stored, homes = StoredPrincipals(AggregateReader(kit.database[AGGREGATES])), MailHomes(settings.dovecot_mail_dir)
    passwd_files = DovecotPasswdFiles(settings.dovecot_passwd_dir, homes)
    deps = _deps(settings, kit, StoredAdmins(stored), passwd_files, homes)

    async def complete_deletions(addresses: Iterable[str]) -> None:
        await kit.send_all(CompleteDeletion(address=address) for address in addresses)

    reconciler = MailLoginReconciler(files=passwd_files, every=stored.every, stored=stored.one,
                                     interval_s=settings.passwd_reconcile_interval_s, in_line=complete_deletions)
    maps = PostfixMaps(hosted_domains=stored.hosted_domains, is_account=stored.is_account,
                       host=settings.postfix_map_host, port=settings.postfix_map_port)
    orphans = OrphanHomeSweeper(homes=homes, live=partial(stored.live_homes, homes),
                                interval_s=settings.home_sweep_interval_s, grace_s=settings.orphan_home_grace_s)

    async def follow(key: str, state: Doc | None) -> None:
        try:
            await follow_mail_login(key, principal_of(key, state), passwd_files)
        except OSError as error:  # the database is the truth: the reconciler brings the file in line
            log.warning("passwd write for %s failed (%s); the reconciler takes over", key, error.strerror)
            reconciler.soon(key)
            return
        if pending_deletion_of(state):
            await complete_deletions([key])

    async def remove_home(item: RemoveHome) -> None:
        await homes.remove(item.address, item.home)

    async def deletions_due() -> list[CompleteDeletion]:
        return [CompleteDeletion(address=address) for address in await stored.pending_deletions()]

    first_admin = settings.first_admin
    directories = Directories(StoredDirectory(kit.database[DIRECTORY]), AccountsToList(kit.database[AGGREGATES]))
    handlers = over_units(lambda unit: replace(deps, accounts=AccountsInUnit(unit)), {
        # the session commands name no address: their own handlers, not `handle`'s address commands
        **dict.fromkeys(CLIENT_COMMANDS, handle), **SESSION_HANDLERS, ForgetDeletedAccount: forget_deleted_account,
        CompleteDeletion: complete_deletion,
        ListAccounts: partial(list_accounts, directories=directories),
        **({SetFirstAdmin: partial(set_first_admin, wanted=first_admin)} if first_admin else {})})
    handlers[RecordInDirectory] = over_unit(lambda unit: directories, record_in_directory)
    due = partial(tombstones_due, stored.deleted_before, retention=settings.tombstone_retention)
    return Wiring(
        handlers=handlers, aggregates=AGGREGATES, follow=follow, work={RemoveHome: remove_home},
        background=(reconciler.run, orphans.run, maps.run,
                    *((policy.run,) if (policy := policy_server_for(settings)) else ())),
        startup=(SetFirstAdmin(login=first_admin.login),) if first_admin else (),
        sweeps=(Sweep(settings.tombstone_sweep_interval_s, lambda: due(now=datetime.now(UTC))),
                Sweep(settings.deletion_sweep_interval_s, deletions_due)),
    )


def _deps(settings: AccountSettings, kit: Resources, admins: StoredAdmins, passwd_files: DovecotPasswdFiles,
          homes: MailHomes) -> Deps:
    hasher = Argon2Hasher(settings.argon2)
    return Deps(
        accounts=AccountsInUnit.outside_any_turn(), admins=admins, hasher=hasher, audit=kit.events(),
        mail_logins=passwd_files, mailboxes=homes,
        issuer=TokenIssuer(load_private_key(settings.session_private_key.get_secret_value()),
                           timedelta(minutes=settings.session_lifetime_minutes)),
        verifier=kit.sessions.verifier,
        clock=partial(datetime.now, UTC), lockout=settings.lockout,
        dummy_hash=hasher.hash_now("dummy password never used"), new_home_id=new_home_id,
        unknown_logins=FailureCounters(settings.lockout, max_keys=settings.unknown_login_memory),
    )


SPEC = ServiceSpec(
    name=SERVICE, settings=AccountSettings,
    commands=(*CLIENT_COMMANDS, SetFirstAdmin, ForgetDeletedAccount, CompleteDeletion, RecordInDirectory),
    compose=compose,
    keeps_sessions=False,  # the account service holds the truth about sessions itself
)
