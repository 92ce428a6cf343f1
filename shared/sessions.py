"""Sessions end everywhere: each service keeps, in its own database, when the sessions of each
address and each admin last ended, fed by the account service's events through the service's own
shards, and refuses tokens issued earlier.

A limit only moves forward: an event of an older generation of the address (e.g. a late
redelivery of its deletion after it was created again) changes nothing.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field
from pymongo.asynchronous.collection import AsyncCollection

from shared.auth import Actor, InvalidToken, TokenVerifier
from shared.contracts.account import AccountCreated, AccountDeleted, AdminChanged, PasswordChanged
from shared.contracts.base import Accepted, Command, Event, InternalCommand, Rejected, rejection

CACHE_S = 0.5
"""A limit is re-read at most this long after it was read: an event counts within a second."""
COLLECTION = "kit_sessions"


class LimitSessions(InternalCommand):
    KEY_FIELD = "key"
    type: Literal["LimitSessions"] = "LimitSessions"
    key: str = Field(min_length=1, max_length=254)
    valid_from: datetime
    deleted: bool = False


def _limit(key: str, valid_from: datetime, *, deleted: bool = False) -> Sequence[LimitSessions]:
    return [LimitSessions(key=key, valid_from=valid_from, deleted=deleted)]


REACTIONS: Mapping[type[Event], Callable[[Any], Sequence[InternalCommand]]] = {
    AccountCreated: lambda e: _limit(e.address, e.sessions_valid_from),
    PasswordChanged: lambda e: _limit(e.address, e.sessions_valid_from),
    AccountDeleted: lambda e: _limit(e.address, e.sessions_valid_from, deleted=True),
    AdminChanged: lambda e: _limit(e.login, e.sessions_valid_from),
}


class SessionEnded(InvalidToken):
    """The token was valid once, but the password changed, the account went, or the admin changed."""


@dataclass
class SessionLimits:
    collection: AsyncCollection[dict[str, Any]]
    _read: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)

    async def record(self, command: LimitSessions, _unit: object = None) -> Accepted:
        """Handler of LimitSessions, run in the key's turn (so read-then-write has no rival); both by
        _id, the one lookup FerretDB serves from an index."""
        key = command.subject_key()
        stored = await self.collection.find_one({"_id": key})
        if stored is None or _aware(stored["valid_from"]) <= command.valid_from:
            limit = {"valid_from": command.valid_from, "deleted": command.deleted}
            await self.collection.update_one({"_id": key}, {"$set": limit}, upsert=True)
        self._read.pop(key, None)
        return Accepted(command_id=command.message_id)

    async def limit_of(self, key: str) -> dict[str, Any] | None:
        now = time.monotonic()
        cached = self._read.get(key)
        if cached and cached[0] > now:
            return cached[1]
        doc = await self.collection.find_one({"_id": key})
        self._read[key] = (now + CACHE_S, doc)
        return doc


@dataclass(frozen=True)
class SessionGuard:
    """What a handler asks: who sent this token, and is the session still live?"""

    verifier: TokenVerifier
    limits: SessionLimits

    async def actor_of(self, command: Command) -> Actor | Rejected:
        """Who sent `command`, or the `unauthenticated` reply to give it."""
        try:
            return await self.actor(command.actor_token)
        except InvalidToken:
            return rejection(command, "unauthenticated", "the session token is missing, invalid or ended")

    async def actor_on(self, command: Command, what: str) -> Actor | Rejected:
        """`actor_of`, and `forbidden` unless the actor may act on the command's address (its own,
        or one of its domains for an admin); `what` names what is refused, e.g. "the rules"."""
        if isinstance(actor := await self.actor_of(command), Rejected):
            return actor
        if not actor.may_act_on(address := command.subject_key()):
            return rejection(command, "forbidden", f"{actor.subject} may not act on {what} of {address}")
        return actor

    async def actor(self, token: str) -> Actor:
        actor = self.verifier.verify(token)
        limit = await self.limits.limit_of(actor.subject)
        if limit and (limit.get("deleted") or actor.issued_at < _aware(limit["valid_from"])):
            raise SessionEnded("the session has ended")
        return actor


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
