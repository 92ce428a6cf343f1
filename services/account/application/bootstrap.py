"""The first server admin comes from settings, so a fresh system can be administered at all."""

import logging
from datetime import datetime

from services.account.application.ports import Accounts, PasswordHasher
from services.account.domain.account import Admin

log = logging.getLogger(__name__)


async def ensure_admin(
    login: str, password: str, domains: frozenset[str], *, accounts: Accounts, hasher: PasswordHasher, now: datetime,
) -> None:
    """Sets the admin as configured; a changed password or domain list ends the admin's earlier sessions."""
    record = await accounts.get(login)
    current = record.principal if record else None
    if isinstance(current, Admin) and current.domains == domains and await hasher.verify(
        current.password_hash, password
    ):
        return
    admin = Admin(login=login, password_hash=await hasher.hash(password), domains=domains, sessions_valid_from=now)
    await accounts.save(login, admin, command_id=f"bootstrap-admin-{login}", events=[])
    log.info("bootstrap admin %s set for domains %s", login, sorted(domains))
