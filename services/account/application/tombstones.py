"""Deleted accounts are kept as tombstones for a while (their replay records answer a late retry of
the delete), then forgotten, each through its own shard."""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from services.account.application.handlers import Deps
from shared.contracts.account import ForgetDeletedAccount
from shared.contracts.base import Accepted


async def tombstones_due(deleted_before: Callable[[datetime], Awaitable[list[str]]], *, now: datetime,
                         retention: timedelta) -> list[ForgetDeletedAccount]:
    """What the periodic sweep sends: one command per tombstone past its retention."""
    cutoff = now - retention
    return [ForgetDeletedAccount(address=address, deleted_before=cutoff) for address in await deleted_before(cutoff)]


async def forget_deleted_account(command: ForgetDeletedAccount, deps: Deps) -> Accepted:
    """Checked again in the account's turn: an address created again since is not touched. The mail
    login is revoked once more first: once forgotten, the address is one the database never knew,
    whose passwd line the reconciler would leave alone."""
    address = command.subject_key()
    try:
        await deps.mail_logins.revoke(address)
    except OSError:  # the file cannot be written now: keep the tombstone, the next sweep tries again
        return Accepted(command_id=command.message_id, result={"forgotten": False})
    forgotten = await deps.accounts.forget_if_deleted_before(address, command.deleted_before)
    return Accepted(command_id=command.message_id, result={"forgotten": forgotten})
