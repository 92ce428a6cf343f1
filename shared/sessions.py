"""Sessions end everywhere: each service keeps, in its own database, when the sessions of each
address and each admin last ended, and which single sessions ended (logouts), fed by the account
service's events through the service's own shards, and refuses tokens issued earlier or ended.

A limit only moves forward: an event of an older generation of the address (e.g. a late
redelivery of its deletion after it was created again) changes nothing.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure

from shared.auth import CLOCK_SKEW, Actor, InvalidToken, TokenVerifier
from shared.contracts import account
from shared.contracts.account import AccountCreated, AccountDeleted, AdminChanged, PasswordChanged, SignedOutEverywhere
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


class RevokeSession(InternalCommand):
    """Refuse the token with this id from now on (one logout), until the token expires anyway."""

    KEY_FIELD = "key"
    type: Literal["RevokeSession"] = "RevokeSession"
    key: str = Field(min_length=1, max_length=254)
    token_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    expires_at: datetime


def _limit(key: str, valid_from: datetime, *, deleted: bool = False) -> Sequence[LimitSessions]:
    return [LimitSessions(key=key, valid_from=valid_from, deleted=deleted)]


def _revoke(event: account.SessionEnded) -> Sequence[RevokeSession]:
    return [RevokeSession(key=event.login, token_id=event.token_id, expires_at=event.expires_at)]


REACTIONS: Mapping[type[Event], Callable[[Any], Sequence[InternalCommand]]] = {
    AccountCreated: lambda e: _limit(e.address, e.sessions_valid_from),
    PasswordChanged: lambda e: _limit(e.address, e.sessions_valid_from),
    AccountDeleted: lambda e: _limit(e.address, e.sessions_valid_from, deleted=True),
    AdminChanged: lambda e: _limit(e.login, e.sessions_valid_from),
    SignedOutEverywhere: lambda e: _limit(e.login, e.sessions_valid_from),
    account.SessionEnded: _revoke,
}


class SessionEnded(InvalidToken):
    """The token was valid once, but the password changed, the account went, the admin changed, or the
    session was ended (a logout, a sign-out everywhere)."""


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


ENDED_PREFIX = "kit_ended_sessions_"
BUCKET = timedelta(hours=1)
BUCKET_FORMAT = "%Y%m%dT%H"
ENDED_KEPT = 10_000
"""token ids whose answer a process remembers (the oldest read is forgotten first)"""
log = logging.getLogger(__name__)


def bucket_of(expires_at: datetime) -> str:
    """The collection of the tokens that expire within the same hour (UTC) as this one."""
    return ENDED_PREFIX + _aware(expires_at).astimezone(UTC).strftime(BUCKET_FORMAT)


def _bucket_over(name: str, now: datetime) -> bool:
    """Every token of the bucket is refused for its expiry by every verifier: the bucket's hour is over,
    by the verifiers' leeway and by as much again for the sweeping host's clock running ahead."""
    try:
        start = datetime.strptime(name.removeprefix(ENDED_PREFIX), BUCKET_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return False
    return start + BUCKET + 2 * CLOCK_SKEW <= now


@dataclass
class EndedSessions:
    """The token ids of ended sessions (logouts), as one collection per hour of the tokens' expiry:
    `kit_ended_sessions_<YYYYMMDDTHH>`, each document `{_id: token id, login, expires_at}`.

    FerretDB has no TTL index and decodes a whole collection for any filter beyond an exact `_id`, so:
    the check is one read by exact `_id` in the collection the token's own `exp` names, and the sweep
    drops whole collections whose hour is over, reading nothing but the list of collection names.
    Bound: the collections that exist are the hours in which ended, unexpired tokens expire (at most
    the token lifetime in hours, plus two), each holding the logouts of tokens expiring in that hour;
    a record outlives its token by less than an hour (plus the clock leeway) and the sweep interval.
    Each record is written once, by its own RevokeSession (no two writers of one document)."""

    database: AsyncDatabase[dict[str, Any]]
    _read: OrderedDict[str, tuple[float, bool]] = field(default_factory=OrderedDict)

    async def record(self, command: RevokeSession, _unit: object = None) -> Accepted:
        """Handler of RevokeSession; a redelivery writes the same document again. A token already past its
        bucket is refused for its expiry: nothing is written (it would bring a swept bucket back)."""
        collection = bucket_of(command.expires_at)
        if not _bucket_over(collection, datetime.now(UTC)):
            ended = {"login": command.subject_key(), "expires_at": command.expires_at}
            await self.database[collection].update_one({"_id": command.token_id}, {"$set": ended}, upsert=True)
        self._remember(command.token_id, ended=True)
        return Accepted(command_id=command.message_id)

    async def ended(self, actor: Actor) -> bool:
        """Whether the actor's session was ended. "Not ended" is re-read after CACHE_S (a logout counts
        within that much after this service recorded it); "ended" is for good."""
        if not actor.token_id:
            return False
        now = time.monotonic()
        cached = self._read.get(actor.token_id)
        if cached and cached[0] > now:
            return cached[1]
        ended = await self.database[bucket_of(actor.expires_at)].find_one({"_id": actor.token_id}, {"_id": 1}) is not None
        self._remember(actor.token_id, ended=ended, until=now + CACHE_S)
        return ended

    def _remember(self, token_id: str, *, ended: bool, until: float = float("inf")) -> None:
        self._read[token_id] = (float("inf") if ended else until, ended)
        self._read.move_to_end(token_id)
        if len(self._read) > ENDED_KEPT:
            self._read.popitem(last=False)

    async def sweep(self, now: datetime) -> list[str]:
        """Drop the buckets whose hour is over; the names dropped."""
        over = [name for name in await self.database.list_collection_names()
                if name.startswith(ENDED_PREFIX) and _bucket_over(name, now)]
        for name in over:
            await self.database.drop_collection(name)
        return over

    async def sweep_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                if dropped := await self.sweep(datetime.now(UTC)):
                    log.info("ended sessions swept: %s", ", ".join(dropped))
            except (ConnectionFailure, ConnectionError, TimeoutError) as error:  # the next round tries again
                log.warning("ended sessions sweep postponed: %s", type(error).__name__)
            except Exception:
                log.exception("ended sessions sweep failed")


@dataclass(frozen=True)
class SessionGuard:
    """What a handler asks: who sent this token, and is the session still live?"""

    verifier: TokenVerifier
    limits: SessionLimits
    ended: EndedSessions

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
        if await self.ended.ended(actor):
            raise SessionEnded("the session was ended (logged out)")
        return actor


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
