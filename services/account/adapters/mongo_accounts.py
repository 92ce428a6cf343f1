"""Accounts and admins in one collection, `_id` = address (user) or login (admin, no '@').

Each save is one update of one document: state, the applied command id and pending events
together, so nothing is half-applied. A deleted account stays as a tombstone until its
events are published and so a redelivered DeleteAccount is still recognised.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from services.account.application.ports import Admin, Record
from services.account.domain.account import Account, SignInState
from services.account.domain.plans import Plan
from shared.contracts.base import Event
from shared.messaging import to_outbox

APPLIED_KEPT = 50


def _sign_in_doc(state: SignInState) -> dict[str, Any]:
    return {"failures": state.failures, "first_failure_at": state.first_failure_at, "locked_until": state.locked_until}


def _sign_in(doc: dict[str, Any] | None) -> SignInState:
    return SignInState(**doc) if doc else SignInState()


def _principal_doc(principal: Account | Admin | None) -> dict[str, Any]:
    if principal is None:
        return {"deleted": True, "password_hash": None, "sign_in": None}
    common = {"deleted": False, "password_hash": principal.password_hash, "sign_in": _sign_in_doc(principal.sign_in)}
    if isinstance(principal, Admin):
        return {**common, "role": "admin", "domains": sorted(principal.domains)}
    return {**common, "role": "user", "plan": str(principal.plan), "quota_mb": principal.quota_mb, "comment": principal.comment}


def _principal(doc: dict[str, Any]) -> Account | Admin | None:
    if doc.get("deleted"):
        return None
    sign_in = _sign_in(doc.get("sign_in"))
    if doc.get("role") == "admin":
        return Admin(login=doc["_id"], password_hash=doc["password_hash"], domains=frozenset(doc["domains"]), sign_in=sign_in)
    return Account(address=doc["_id"], plan=Plan(doc["plan"]), password_hash=doc["password_hash"],
                   quota_mb=doc.get("quota_mb"), comment=doc.get("comment", ""), sign_in=sign_in)


class MongoAccounts:
    def __init__(self, collection: AsyncCollection) -> None:
        self._collection = collection

    async def get(self, key: str) -> Record | None:
        doc = await self._collection.find_one({"_id": key})
        if doc is None:
            return None
        applied = {entry["id"]: entry.get("reply") for entry in doc.get("applied", [])}
        return Record(principal=_principal(doc), applied=applied)

    async def save(
        self, key: str, principal: Account | Admin | None, *,
        command_id: str, reply: dict[str, Any] | None, events: Sequence[Event],
    ) -> None:
        current = await self._collection.find_one({"_id": key}, {"applied": 1, "outbox": 1}) or {}
        applied = [*current.get("applied", []), {"id": command_id, "reply": reply}][-APPLIED_KEPT:]
        outbox = [*current.get("outbox", []), *map(to_outbox, events)]
        now = datetime.now(UTC)
        fields = {**_principal_doc(principal), "applied": applied, "outbox": outbox, "updated_at": now}
        await self._collection.update_one(
            {"_id": key}, {"$set": fields, "$setOnInsert": {"created_at": now}}, upsert=True
        )
