"""A unit of work per delivery over one aggregate document, and the shard's store of them.

The document is `_id` = the aggregate key, the service's own fields, and the kit's: `version`,
`applied` (the latest message_ids handled, each with a digest of its body and its reply) and
`outbox`. A commit is ONE single-document write of all of it, so state, idempotency record and
pending messages never part (FerretDB has no transactions).

The shard's single active consumer keeps the documents it wrote (`ShardAggregates`) for as long as
it holds the delivering channel: a command then costs one database round trip, the write. Entries
relayed since the last write are dropped from the outbox by the next write (or by a FlushOutbox
the sweeper sends for an idle aggregate), not by a write of their own. On MongoDB every write is
guarded by `version`: a writer that lost the shard and wrote behind our back is detected, the cache
is dropped and the delivery is decided again from a fresh read. FerretDB v1 does not enforce such a
guard (it checks the filter and writes in two steps), and any filter beyond `_id` makes it decode
every document of the collection, so there the guard is off: the cache is trusted only while the
channel that filled it delivers, and a takeover always starts cold.
"""

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.contracts.base import Accepted, Event, InternalCommand, Rejected, Requester, WorkItem
from shared.messaging.outbox import Entry, command_entry, event_entry, work_entry
from shared.messaging.redaction import Redactor

Doc = dict[str, Any]
KIT_FIELDS = frozenset({"_id", "version", "applied", "outbox", "created_at", "updated_at", "trace"})
APPLIED_KEPT = 10
"""Enough for what can come again: the one command a crash interrupts, and a client retrying a
timed-out request while a few others of the account went through."""
CACHED_AGGREGATES = 10_000


class StaleAggregate(Exception):
    """The aggregate changed since this consumer read it (another instance held the shard)."""


def digest(body: bytes, redact: Redactor) -> str:
    """Of the body without its secrets: the database never holds a fast hash of a password, so a
    replay that differs only in a secret counts as the same command."""
    return hashlib.sha256(redact(body)).hexdigest()[:16]


@dataclass(frozen=True)
class Applied:
    """A handled command as remembered: one short string, since FerretDB pays for nesting."""

    message_id: str
    digest: str
    reply: Accepted | Rejected

    def encode(self) -> str:
        reply = self.reply.model_dump_json(exclude={"command_id", "status"}, exclude_defaults=True)
        return f"{self.message_id} {self.digest} {reply}"

    @classmethod
    def decode(cls, text: str) -> "Applied":
        message_id, body_digest, reply = text.split(" ", 2)
        fields = json.loads(reply)
        return cls(message_id, body_digest, Rejected(**fields) if "code" in fields else Accepted(**fields))


class UnitOfWork:
    """One aggregate for one delivery: the handler reads `state` and `stage`s what to write."""

    def __init__(self, key: str, doc: Doc | None, *, service: str) -> None:
        self.key = key
        self._doc = doc
        self._service = service
        self.fields: Doc = {}
        self.entries: list[Entry] = []
        self.work: list[WorkItem] = []
        self.removing = False
        self.requester: Requester | None = None
        """who asked (a client command on direct reply-to): for a handler that answers later"""
        self.trace: dict[str, str] | None = None
        """the trace context of the command deciding now, kept with what it stages as the aggregate's
        latest cause (None: keep the one stored)"""

    @property
    def cause(self) -> dict[str, str] | None:
        """The trace context of the latest traced command that changed the aggregate: what a later sweep,
        retry or redeploy of it links to."""
        return None if self._doc is None else self._doc.get("trace")

    @property
    def state(self) -> Doc | None:
        """The service's fields as stored (None: no document yet), with what is staged on top."""
        if self._doc is None and not self.fields:
            return None
        return {k: v for k, v in {**(self._doc or {}), **self.fields}.items() if k not in KIT_FIELDS}

    def stage(self, fields: Doc, *, events: Sequence[Event] = (), work: Sequence[WorkItem] = (),
              commands: Sequence[InternalCommand] = ()) -> None:
        """Set `fields` and send `events`, `work` and internal `commands`, all in the commit's one write."""
        if KIT_FIELDS & fields.keys():
            raise ValueError(f"fields reserved by the kit: {sorted(KIT_FIELDS & fields.keys())}")
        self.fields.update(fields)
        self.entries += [event_entry(e) for e in events] + [work_entry(self._service, w) for w in work]
        self.entries += [command_entry(self._service, c) for c in commands]
        self.work += work

    def remove(self) -> None:
        """Forget the aggregate altogether (with its replay records): the commit deletes its document,
        unless messages of it still wait to be published."""
        self.removing = True

    @property
    def staged(self) -> bool:
        return bool(self.fields or self.entries or self.removing)

    @property
    def updated_at(self) -> datetime | None:
        return None if self._doc is None else self._doc.get("updated_at")

    def applied(self, message_id: str) -> Applied | None:
        for text in (self._doc or {}).get("applied", []):
            if text.startswith(message_id + " "):
                return Applied.decode(text)
        return None

    @property
    def version(self) -> int | None:
        return None if self._doc is None else int(self._doc.get("version", 0))


@dataclass
class _Cached:
    doc: Doc
    relayed: set[str] = field(default_factory=set)


class ShardAggregates:
    """The aggregates of one command shard, as its consumer sees them (see the module docstring)."""

    def __init__(self, collection: AsyncCollection[Doc], *, service: str, guarded: bool = True,
                 size: int = CACHED_AGGREGATES) -> None:
        self._collection = collection
        self.guarded = guarded
        self._service = service
        self._size = size
        self._owner: object | None = None
        self._cache: OrderedDict[str, _Cached] = OrderedDict()

    def claim(self, owner: object) -> None:
        """Deliveries now come through `owner` (the channel): a new one means the shard may have
        been someone else's meanwhile, so nothing remembered is trusted."""
        if owner is not self._owner:
            self._owner = owner
            self._cache.clear()

    def forget(self, key: str) -> None:
        self._cache.pop(key, None)

    async def refresh(self, key: str) -> None:
        """Read the aggregate again; what this consumer relayed still counts if nobody wrote since."""
        fresh = await self._collection.find_one({"_id": key}) or {}
        cached = self._cache.get(key)
        if cached is None or cached.doc.get("version") != fresh.get("version"):
            self._remember(key, _Cached(fresh))

    async def open(self, key: str) -> UnitOfWork:
        return UnitOfWork(key, (await self._cached(key)).doc or None, service=self._service)

    async def _cached(self, key: str) -> _Cached:
        if (cached := self._cache.get(key)) is None:
            read = _Cached(await self._collection.find_one({"_id": key}) or {})
            # a write of the key may have landed while the read was on its way: it is newer
            if (cached := self._cache.get(key)) is None:
                cached = read
                self._remember(key, cached)
        self._cache.move_to_end(key)
        return cached

    def _remember(self, key: str, cached: _Cached) -> None:
        self._cache[key] = cached
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)

    async def commit(self, unit: UnitOfWork, applied: Applied | None) -> None:
        """One write: staged fields, the applied record, unrelayed + new outbox entries."""
        if not unit.staged and applied is None:
            return
        cached = await self._cached(unit.key)
        doc = cached.doc
        if unit.removing:
            await self._remove(unit.key, cached)
            return
        changes: Doc = {**unit.fields, "outbox": self._unrelayed(cached) + unit.entries}
        if unit.trace and unit.staged:
            changes["trace"] = unit.trace
        if applied is not None:
            changes["applied"] = [*doc.get("applied", []), applied.encode()][-APPLIED_KEPT:]
        await self._write(unit.key, doc, changes)

    async def _remove(self, key: str, cached: _Cached) -> None:
        if not cached.doc or self._unrelayed(cached):
            return  # nothing to remove, or not yet: the next sweep tries again
        try:
            result = await self._collection.delete_one({"_id": key, **self._guard(cached.doc)})
        finally:
            self.forget(key)
        if result.deleted_count != 1:
            raise StaleAggregate(key)

    async def trim(self, key: str) -> None:
        """Drop relayed entries from the outbox (FlushOutbox on an idle aggregate)."""
        cached = await self._cached(key)
        if cached.doc and len(cached.doc.get("outbox", [])) != len(self._unrelayed(cached)):
            await self._write(key, cached.doc, {"outbox": self._unrelayed(cached)})

    @staticmethod
    def _unrelayed(cached: _Cached) -> list[Entry]:
        return [e for e in cached.doc.get("outbox", []) if e["id"] not in cached.relayed]

    async def _write(self, key: str, doc: Doc, changes: Doc) -> None:
        now = datetime.now(UTC)
        version = int(doc.get("version", 0))
        changes = {**changes, "version": version + 1, "updated_at": now}
        try:
            if doc:
                guard = self._guard(doc)
                result = await self._collection.update_one({"_id": key, **guard}, {"$set": changes})
                if result.matched_count != 1:
                    raise StaleAggregate(key)
            else:
                await self._collection.insert_one({"_id": key, "created_at": now, **changes})
        except (StaleAggregate, DuplicateKeyError):
            self.forget(key)
            raise StaleAggregate(key) from None
        except BaseException:  # the write may or may not have landed: read it again next time
            self.forget(key)
            raise
        written = {**doc, "_id": key, **changes}
        # the relay may have confirmed entries while the write was on its way: still published
        relayed = self._cache[key].relayed if key in self._cache else set()
        self._remember(key, _Cached(written, relayed & {e["id"] for e in written["outbox"]}))

    def _guard(self, doc: Doc) -> Doc:
        if not self.guarded:
            return {}
        return {"version": doc["version"]} if "version" in doc else {"version": {"$exists": False}}

    async def pending(self, key: str) -> list[Entry]:
        return self._unrelayed(await self._cached(key))

    def relayed(self, key: str, entry_ids: list[str]) -> None:
        if cached := self._cache.get(key):
            cached.relayed.update(entry_ids)


class AggregateReader:
    """Reads outside any turn (another aggregate, the sweeper): nothing remembered, nothing written."""

    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self._collection = collection

    async def peek(self, key: str) -> Doc | None:
        doc = await self._collection.find_one({"_id": key})
        return {k: v for k, v in doc.items() if k not in KIT_FIELDS} if doc else None

    async def every(self, query: Doc | None = None, *, fields: Sequence[str] = ()) -> dict[str, Doc]:
        """Every aggregate's state by key (only `fields`, if named), or those matching `query` (a scan:
        for periodic work or a cache, never a command's path)."""
        projection = dict.fromkeys(fields, 1) if fields else {"applied": 0, "outbox": 0}
        cursor = self._collection.find(query or {}, projection)
        return {doc["_id"]: {k: v for k, v in doc.items() if k not in KIT_FIELDS} async for doc in cursor}

    async def keys_where(self, query: Doc, *, limit: int = 1000) -> list[str]:
        """Keys of aggregates whose state matches `query` (a scan: for periodic work only)."""
        return [doc["_id"] async for doc in self._collection.find(query, {"_id": 1}).limit(limit)]

    async def stale_keys(self, *, older_than: timedelta, limit: int = 100) -> list[str]:
        """Keys whose oldest outbox entry has waited longer than a relay ever should."""
        cutoff = datetime.now(UTC) - older_than
        cursor = self._collection.find({"outbox.0.at": {"$lt": cutoff}}, {"_id": 1}).sort("outbox.0.at", 1).limit(limit)
        return [doc["_id"] async for doc in cursor]
