"""Accounts and admins as documents of the kit's unit of work, `_id` = address (user) or login
(admin, no '@'). A deleted account stays as a tombstone, so its idempotency record and pending
events survive it."""

import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from services.account.adapters.mail_homes import MailHomes
from services.account.application.ports import PendingDeletion, Principal
from services.account.domain.account import Account, Admin, SignInState
from services.account.domain.directory import State
from services.account.domain.ended_sessions import EndedSessions
from services.account.messages import RecordInDirectory
from shared.contracts.account import AccountDeleted
from shared.contracts.base import Event, WorkItem
from shared.messaging.unit_of_work import AggregateReader, Doc, UnitOfWork
from shared.plans import Plan

ADMIN_CACHE_S = 2.0


def _sign_in_doc(state: SignInState) -> Doc:
    return {"failures": state.failures, "first_failure_at": state.first_failure_at, "locked_until": state.locked_until}


def principal_doc(principal: Principal | None) -> Doc:
    if principal is None:  # a tombstone keeps nothing of the account it was
        return {"deleted": True, "password_hash": None, "sign_in": None, "role": None, "plan": None,
                "quota_mb": None, "comment": None, "domains": None, "deletion_pending": None, "ended_sessions": None,
                "account_created_at": None}
    common = {"deleted": False, "password_hash": principal.password_hash, "sign_in": _sign_in_doc(principal.sign_in),
              "sessions_valid_from": principal.sessions_valid_from, "ended_sessions": principal.ended_sessions.encode()}
    if isinstance(principal, Admin):
        return {**common, "role": "admin", "domains": sorted(principal.domains)}
    return {**common, "role": "user", "plan": str(principal.plan), "quota_mb": principal.quota_mb,
            "comment": principal.comment, "home": principal.home, "deletion_pending": None,
            "account_created_at": principal.created_at}


def tombstone_doc(pending: PendingDeletion) -> Doc:
    """The home's id stays until the home is gone; the event waits for the mail login to be gone."""
    return {**principal_doc(None), "home": pending.home, "deletion_pending": pending.event.model_dump(mode="json")}


def pending_deletion_of(doc: Doc | None) -> PendingDeletion | None:
    if not doc or not doc.get("deleted") or not doc.get("deletion_pending"):
        return None
    return PendingDeletion(home=doc.get("home") or "", event=AccountDeleted.model_validate(doc["deletion_pending"]))


def principal_of(key: str, doc: Doc | None) -> Principal | None:
    if not doc or doc.get("deleted"):
        return None
    sign_in = SignInState(**doc["sign_in"]) if doc.get("sign_in") else SignInState()
    ended = EndedSessions.decode(doc.get("ended_sessions"))
    if doc.get("role") == "admin":
        return Admin(login=key, password_hash=doc["password_hash"], domains=frozenset(doc["domains"]),
                     sign_in=sign_in, sessions_valid_from=doc.get("sessions_valid_from"), ended_sessions=ended)
    return Account(address=key, plan=Plan(doc["plan"]), password_hash=doc["password_hash"],
                   quota_mb=doc.get("quota_mb"), comment=doc.get("comment", ""), sign_in=sign_in,
                   sessions_valid_from=doc.get("sessions_valid_from"), home=doc.get("home") or "", ended_sessions=ended,
                   created_at=doc.get("account_created_at"))


def directory_line(account: Account, version: int, state: State = "active") -> RecordInDirectory:
    """What the domain's directory is to show of `account` (the list's read side)."""
    domain = account.address.rpartition("@")[2]
    return RecordInDirectory(domain=domain, address=account.address, version=version, plan=str(account.plan),
                             quota_mb=account.quota_mb, comment=account.comment, created_at=account.created_at,
                             state=state)


def directory_gone(address: str, version: int) -> RecordInDirectory:
    return RecordInDirectory(domain=address.rpartition("@")[2], address=address, version=version, gone=True)


def listed_the_same(before: RecordInDirectory, after: RecordInDirectory) -> bool:
    return before.model_dump(exclude={"message_id", "occurred_at", "version"}) == after.model_dump(
        exclude={"message_id", "occurred_at", "version"})


class AccountsInUnit:
    """The Accounts port over the delivery's unit of work: only its own aggregate is reachable. A change
    of what the account list shows stages the account's new line for its domain's directory (sent with
    the change, in its one write); sign-ins and password changes stage none."""

    def __init__(self, unit: UnitOfWork | None) -> None:
        self._unit = unit

    @classmethod
    def outside_any_turn(cls) -> "AccountsInUnit":
        """A placeholder for the composition root: every use refuses."""
        return cls(None)

    def _check(self, key: str) -> UnitOfWork:
        if self._unit is None:
            raise LookupError("no aggregate outside a turn")
        if key != self._unit.key:
            raise LookupError(f"{key} is not the aggregate of this turn ({self._unit.key})")
        return self._unit

    async def get(self, key: str) -> Principal | None:
        return principal_of(key, self._check(key).state)

    async def save(self, key: str, principal: Principal | None, *, events: Sequence[Event]) -> None:
        unit = self._check(key)
        unit.stage(principal_doc(principal), events=events, commands=self._listed(unit, principal))

    async def pending_deletion(self, key: str) -> PendingDeletion | None:
        return pending_deletion_of(self._check(key).state)

    async def start_deletion(self, key: str, pending: PendingDeletion) -> None:
        unit = self._check(key)
        before = principal_of(key, unit.state)
        deleting = [directory_line(before, _next_version(unit), "deleting")] if isinstance(before, Account) else []
        unit.stage(tombstone_doc(pending), commands=deleting)

    async def finish_deletion(self, key: str, pending: PendingDeletion, *, work: Sequence[WorkItem]) -> None:
        unit = self._check(key)
        unit.stage({"deletion_pending": None}, events=[pending.event], work=work,
                   commands=[directory_gone(key, _next_version(unit))])

    @staticmethod
    def _listed(unit: UnitOfWork, principal: Principal | None) -> list[RecordInDirectory]:
        before = principal_of(unit.key, unit.state)
        if isinstance(principal, Account):
            line = directory_line(principal, _next_version(unit))
            unchanged = isinstance(before, Account) and listed_the_same(directory_line(before, 0), line)
            return [] if unchanged else [line]
        return [directory_gone(before.address, _next_version(unit))] if isinstance(before, Account) else []

    async def forget_if_deleted_before(self, key: str, moment: datetime) -> bool:
        unit = self._check(key)
        if pending_deletion_of(unit.state):
            return False
        deleted_at = unit.updated_at  # a tombstone's last write is its deletion (or the trim just after)
        if not (unit.state or {}).get("deleted") or deleted_at is None or deleted_at >= moment:
            return False
        unit.remove()
        return True


def _next_version(unit: UnitOfWork) -> int:
    """The version the unit's commit gives the account's document."""
    return (unit.version or 0) + 1


class StoredPrincipals:
    """Accounts and admins as stored now, read outside any turn (the reconciler's and sweeps' view)."""

    def __init__(self, reader: AggregateReader) -> None:
        self._reader = reader

    async def one(self, key: str) -> Principal | None:
        return principal_of(key, await self._reader.peek(key))

    async def every(self) -> dict[str, Principal | None]:
        return {key: principal_of(key, state) for key, state in (await self._reader.every()).items()}

    async def hosted_domains(self) -> set[str]:
        """The domains some admin administers: the only ones accounts can be created in."""
        admins = await self._reader.every({"role": "admin", "deleted": False})
        return {domain for doc in admins.values() for domain in doc.get("domains") or ()}

    async def is_account(self, address: str) -> bool:
        return isinstance(await self.one(address), Account)

    async def deleted_before(self, moment: datetime) -> list[str]:
        """Addresses whose tombstone was last written before `moment`."""
        return await self._reader.keys_where({"deleted": True, "deletion_pending": None, "updated_at": {"$lt": moment}})

    async def pending_deletions(self) -> list[str]:
        """Deleted accounts still waiting for their mail login to be gone (a scan: the backstop only)."""
        return await self._reader.keys_where({"deleted": True, "deletion_pending": {"$ne": None}})

    async def live_homes(self, homes: MailHomes) -> tuple[set[str], set[Path]]:
        """Every address known (accounts and tombstones), and the homes of accounts and of deletions
        still under way."""
        docs = {key: doc for key, doc in (await self._reader.every()).items() if "@" in key}
        return set(docs), {homes.path_of(key, doc.get("home") or "") for key, doc in docs.items()
                           if not doc.get("deleted") or doc.get("deletion_pending")}


class StoredAdmins:
    """The Admins port: an admin as stored, read outside any turn and remembered ADMIN_CACHE_S, so
    admin commands skip a read while a change still counts within seconds."""

    def __init__(self, stored: StoredPrincipals) -> None:
        self._stored = stored
        self._admins: dict[str, tuple[float, Admin | None]] = {}

    async def current(self, login: str) -> Admin | None:
        now = time.monotonic()
        cached = self._admins.get(login)
        if cached and cached[0] > now:
            return cached[1]
        principal = await self._stored.one(login)
        admin = principal if isinstance(principal, Admin) else None
        self._admins[login] = (now + ADMIN_CACHE_S, admin)
        return admin


