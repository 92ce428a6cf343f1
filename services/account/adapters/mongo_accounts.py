"""Accounts and admins in one collection, `_id` = address (user) or login (admin, no '@').

Each save is one update of one document: state, the applied command id and pending events
together, so nothing is half-applied. A deleted account stays as a tombstone until its
events are published and so a redelivered DeleteAccount is still recognised.
"""

import time
from collections.abc import Sequence
from typing import Any

from services.account.application.ports import Record
from services.account.domain.account import Account, Admin, SignInState
from services.account.domain.plans import Plan
from shared.contracts.base import Event
from shared.mongo import AggregateDocuments
from shared.outbox import to_outbox

APPLIED_KEPT = 20
ADMIN_CACHE_S = 2.0


def _sign_in_doc(state: SignInState) -> dict[str, Any]:
    return {"failures": state.failures, "first_failure_at": state.first_failure_at, "locked_until": state.locked_until}


def _sign_in(doc: dict[str, Any] | None) -> SignInState:
    return SignInState(**doc) if doc else SignInState()


def _principal_doc(principal: Account | Admin | None) -> dict[str, Any]:
    if principal is None:
        return {"deleted": True, "password_hash": None, "sign_in": None}
    common = {"deleted": False, "password_hash": principal.password_hash, "sign_in": _sign_in_doc(principal.sign_in),
              "sessions_valid_from": principal.sessions_valid_from}
    if isinstance(principal, Admin):
        return {**common, "role": "admin", "domains": sorted(principal.domains)}
    return {**common, "role": "user", "plan": str(principal.plan), "quota_mb": principal.quota_mb,
            "comment": principal.comment}


def _principal(doc: dict[str, Any]) -> Account | Admin | None:
    if doc.get("deleted"):
        return None
    sign_in = _sign_in(doc.get("sign_in"))
    if doc.get("role") == "admin":
        return Admin(login=doc["_id"], password_hash=doc["password_hash"], domains=frozenset(doc["domains"]),
                     sign_in=sign_in, sessions_valid_from=doc.get("sessions_valid_from"))
    return Account(address=doc["_id"], plan=Plan(doc["plan"]), password_hash=doc["password_hash"],
                   quota_mb=doc.get("quota_mb"), comment=doc.get("comment", ""), sign_in=sign_in,
                   sessions_valid_from=doc.get("sessions_valid_from"))


def _remembered(current: dict[str, Any], command_id: str | None) -> dict[str, Any]:
    """A plain id list: FerretDB's cost grows fast with nested documents."""
    if command_id is None:
        return {}
    return {"applied": [*current.get("applied", []), command_id][-APPLIED_KEPT:]}


class MongoAccounts:
    """The Accounts port, and the outbox store its relay reads (same documents, same turn)."""

    def __init__(self, documents: AggregateDocuments) -> None:
        self._documents = documents
        self._admins: dict[str, tuple[float, Admin | None]] = {}
        self.pending = documents.pending
        self.remove = documents.remove
        self.forget = documents.forget
        self.stale_keys = documents.stale_keys

    async def current(self, login: str) -> Admin | None:
        """Remembered for ADMIN_CACHE_S: admin commands skip a read, a change still counts within seconds."""
        now = time.monotonic()
        cached = self._admins.get(login)
        if cached and cached[0] > now:
            return cached[1]
        doc = await self._documents.peek(login)
        principal = _principal(doc) if doc else None
        admin = principal if isinstance(principal, Admin) else None
        self._admins[login] = (now + ADMIN_CACHE_S, admin)
        return admin

    async def get(self, key: str) -> Record | None:
        doc = await self._documents.read(key)
        if doc is None:
            return None
        return Record(principal=_principal(doc), applied=frozenset(doc.get("applied", [])))

    async def save(
        self, key: str, principal: Account | Admin | None, *,
        command_id: str | None, events: Sequence[Event],
    ) -> None:
        await self._documents.write(
            key, _principal_doc(principal), outbox=[to_outbox(event) for event in events],
            remember=lambda current: _remembered(current, command_id),
        )
