"""The first server admin comes from settings, so a fresh system can be administered at all.

Start-up sends SetFirstAdmin through the admin's own shard (one writer per aggregate); the
password and domains come from settings, never over the broker.
"""

import logging
from dataclasses import dataclass

from services.account.application.handlers import Deps
from services.account.domain.account import Admin
from shared.contracts.account import AdminChanged, SetFirstAdmin
from shared.contracts.base import Accepted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstAdmin:
    login: str
    password: str
    domains: frozenset[str]


async def set_first_admin(command: SetFirstAdmin, deps: Deps, wanted: FirstAdmin) -> Accepted:
    """Sets the admin as configured; a changed password or domain list ends the admin's earlier sessions."""
    current = await deps.accounts.get(command.login)
    if isinstance(current, Admin) and current.domains == wanted.domains and await deps.hasher.verify(
        current.password_hash, wanted.password
    ):
        return Accepted(command_id=command.message_id)
    now = deps.clock()
    admin = Admin(login=wanted.login, password_hash=await deps.hasher.hash(wanted.password),
                  domains=wanted.domains, sessions_valid_from=now)
    event = AdminChanged(login=admin.login, domains=tuple(sorted(admin.domains)), sessions_valid_from=now,
                         causation_id=command.message_id)
    await deps.accounts.save(admin.login, admin, events=[event])
    log.info("first admin %s set for domains %s", admin.login, sorted(admin.domains))
    return Accepted(command_id=command.message_id)
