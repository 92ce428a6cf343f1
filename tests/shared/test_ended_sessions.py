"""The kit's sessions projection: single sessions ended (logouts) and every session of a login ended, as each
service's SessionGuard refuses them; and the sweep of the ended sessions once their tokens expired."""

import copy
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from shared.auth import CLOCK_SKEW, TokenIssuer, TokenVerifier, generate_keypair, load_private_key, load_public_key
from shared.contracts.account import SessionEnded, SignedOutEverywhere
from shared.messaging.events import EventConsumer
from shared.messaging.redaction import Redactor
from shared.sessions import (
    BUCKET,
    REACTIONS,
    EndedSessions,
    LimitSessions,
    RevokeSession,
    SessionGuard,
    SessionLimits,
    bucket_of,
)
from shared.sessions import (
    SessionEnded as Refused,
)

ADDRESS = "taro@example.jp"


class Collection:
    """The calls the projection makes on a pymongo collection (by exact `_id` only), over a dict."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.reads = 0

    async def find_one(self, query: dict[str, Any], projection: Any = None) -> dict[str, Any] | None:
        assert set(query) == {"_id"} and isinstance(query["_id"], str), "only exact _id lookups"
        self.reads += 1
        doc = self.docs.get(query["_id"])
        return copy.deepcopy(doc) if doc else None

    async def update_one(self, query: dict[str, Any], update: dict[str, Any], upsert: bool = False) -> SimpleNamespace:
        assert set(query) == {"_id"} and upsert
        self.docs.setdefault(query["_id"], {"_id": query["_id"]}).update(copy.deepcopy(update["$set"]))
        return SimpleNamespace(matched_count=1)


class Database:
    def __init__(self) -> None:
        self.collections: dict[str, Collection] = {}

    def __getitem__(self, name: str) -> Collection:
        return self.collections.setdefault(name, Collection())

    async def list_collection_names(self) -> list[str]:
        return [name for name, collection in self.collections.items() if collection.docs]

    async def drop_collection(self, name: str) -> None:
        self.collections.pop(name, None)


@pytest.fixture
def keys() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture
def issuer(keys: tuple[str, str]) -> TokenIssuer:
    return TokenIssuer(load_private_key(keys[0]), timedelta(hours=1))


def token(issuer: TokenIssuer, subject: str = ADDRESS, now: datetime | None = None) -> str:
    return issuer.issue(subject=subject, role="user", domains=frozenset(), now=now or datetime.now(UTC))[0]


@pytest.fixture
def database() -> Database:
    return Database()


@pytest.fixture
def guard(keys: tuple[str, str], database: Database) -> SessionGuard:
    verifier = TokenVerifier(load_public_key(keys[1]))
    return SessionGuard(verifier, SessionLimits(database["kit_sessions"]), EndedSessions(database))  # type: ignore[arg-type]


def reacting(event: Any) -> list[Any]:
    """The internal commands a service sends itself for an account event (as its event consumer does)."""
    consumer = EventConsumer(queue="rules.events", broker=None, service="rules",  # type: ignore[arg-type]
                             parse=None, reactions=REACTIONS, transient_errors=(), delivery_limit=5,  # type: ignore[arg-type]
                             redact=Redactor({}))
    return consumer.commands_for(event)


async def apply(guard: SessionGuard, event: Any) -> None:
    for command in reacting(event):
        handler = guard.ended.record if isinstance(command, RevokeSession) else guard.limits.record
        await handler(command)


def ended_event(guard: SessionGuard, of: str) -> SessionEnded:
    actor = guard.verifier.verify(of)
    return SessionEnded(login=actor.subject, token_id=actor.token_id, expires_at=actor.expires_at)


async def test_a_logout_refuses_that_token_and_no_other_of_the_account(guard, issuer):
    """Ensure after SessionEnded the guard refuses the ended token (`unauthenticated`) and accepts the account's others."""
    phone, laptop = token(issuer), token(issuer)
    assert (await guard.actor(phone)).subject == ADDRESS

    await apply(guard, ended_event(guard, phone))

    with pytest.raises(Refused):
        await guard.actor(phone)
    assert (await guard.actor(laptop)).subject == ADDRESS


async def test_signing_out_everywhere_refuses_every_earlier_token(guard, issuer):
    """Ensure SignedOutEverywhere moves the account's limit through LimitSessions: every earlier token is refused,
    a later one accepted."""
    phone, laptop = token(issuer), token(issuer)
    signed_out = datetime.now(UTC)

    [command] = reacting(SignedOutEverywhere(login=ADDRESS, actor=ADDRESS, sessions_valid_from=signed_out))
    await guard.limits.record(command)

    assert isinstance(command, LimitSessions) and not command.deleted
    for ended in (phone, laptop):
        with pytest.raises(Refused):
            await guard.actor(ended)
    assert await guard.actor(token(issuer, now=signed_out + timedelta(seconds=1)))


async def test_a_redelivered_logout_is_the_same_command_and_one_record(guard, issuer, database):
    """Ensure SessionEnded delivered twice becomes the very same RevokeSession, and recording it twice keeps one record
    (its token id, login and expiry; never the token)."""
    ended = token(issuer)
    event = ended_event(guard, ended)

    first, second = reacting(event), reacting(event)
    for command in (*first, *second):
        await guard.ended.record(command)

    assert [c.model_dump_json() for c in first] == [c.model_dump_json() for c in second]
    [bucket] = [c for name, c in database.collections.items() if name.startswith("kit_ended_sessions_")]
    assert bucket.docs == {event.token_id: {"_id": event.token_id, "login": ADDRESS, "expires_at": event.expires_at}}


async def test_an_ended_session_is_looked_up_by_id_in_its_own_hour(guard, issuer, database):
    """Ensure the check is one exact-_id read in the bucket of the token's expiry, and an ended session, once read,
    is refused without reading again."""
    ended = token(issuer)
    actor = guard.verifier.verify(ended)
    bucket = database[bucket_of(actor.expires_at)]
    await bucket.update_one({"_id": actor.token_id}, {"$set": {"login": ADDRESS}}, upsert=True)  # another process's

    for _ in range(3):
        with pytest.raises(Refused):
            await guard.actor(ended)

    assert bucket.reads == 1


async def test_the_sweep_drops_only_the_hours_every_token_of_which_expired(database):
    """Ensure the sweep drops a bucket once its hour is over by twice the clock leeway, never a later one, and reads
    no record to do so."""
    ended = EndedSessions(database)  # type: ignore[arg-type]
    hour = datetime(2026, 12, 2, 15, tzinfo=UTC)
    for expires in (hour - BUCKET + timedelta(minutes=59), hour + timedelta(minutes=1), hour + BUCKET):
        await database[bucket_of(expires)].update_one({"_id": f"t{expires:%H%M}"}, {"$set": {"login": ADDRESS}}, upsert=True)
    database["kit_sessions"].docs[ADDRESS] = {"_id": ADDRESS}

    assert await ended.sweep(now=hour + 2 * CLOCK_SKEW - timedelta(seconds=1)) == []
    dropped = await ended.sweep(now=hour + 2 * CLOCK_SKEW)

    assert dropped == ["kit_ended_sessions_20261202T14"]
    assert sorted(database.collections) == ["kit_ended_sessions_20261202T15", "kit_ended_sessions_20261202T16", "kit_sessions"]
    assert all(collection.reads == 0 for collection in database.collections.values())


async def test_a_late_logout_of_an_expired_token_brings_no_swept_hour_back(database):
    """Ensure a RevokeSession arriving after its token's hour is over writes nothing (the sweep dropped that hour)."""
    ended = EndedSessions(database)  # type: ignore[arg-type]
    long_expired = datetime.now(UTC) - BUCKET - 2 * CLOCK_SKEW

    await ended.record(RevokeSession(key=ADDRESS, token_id="abc", expires_at=long_expired))

    assert await database.list_collection_names() == []
