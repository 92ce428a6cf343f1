"""MongoDB client factory and aggregate documents that carry their own outbox.

FerretDB v1 has no transactions and no locks (and silently ignores `$pull` with a condition),
so state and its pending events are written in one single-document update, and only the
consumer whose turn it is (per-account ordering) reads and writes an aggregate's document.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

Doc = dict[str, Any]


def make_client(url: str) -> AsyncMongoClient:
    return AsyncMongoClient(
        url, retryWrites=False, tz_aware=True, serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000, socketTimeoutMS=10000, appname="mail-self-service",
    )


class AggregateDocuments:
    """One collection of aggregates, `_id` = the aggregate key, pending events in `outbox`.

    A turn is: read -> write(s) -> pending -> remove -> forget. The document read at the start of
    the turn is remembered until `forget` ends it, so writes and the relay need no extra round trips.
    """

    def __init__(self, collection: AsyncCollection) -> None:
        self._collection = collection
        self._turn: dict[str, Doc] = {}

    async def read(self, key: str) -> Doc | None:
        doc = await self.peek(key)
        self._turn[key] = doc or {}
        return doc

    async def peek(self, key: str) -> Doc | None:
        """Read outside any turn (nothing remembered)."""
        return await self._collection.find_one({"_id": key})

    async def _current(self, key: str) -> Doc:
        if key not in self._turn:
            await self.read(key)
        return self._turn[key]

    async def write(self, key: str, fields: Doc, *, outbox: Sequence[Doc],
                    remember: Callable[[Doc], Doc] = lambda current: {}) -> None:
        """Set `fields` and whatever `remember(current)` returns, and append `outbox`, in one update."""
        current = await self._current(key)
        now = datetime.now(UTC)
        changes = {**fields, **remember(current), "outbox": [*current.get("outbox", []), *outbox], "updated_at": now}
        await self._collection.update_one({"_id": key}, {"$set": changes, "$setOnInsert": {"created_at": now}}, upsert=True)
        self._turn[key] = {**current, **changes}

    async def pending(self, key: str) -> list[Doc]:
        return list((await self._current(key)).get("outbox", []))

    async def remove(self, key: str, event_ids: list[str]) -> None:
        if not event_ids:
            return
        current = await self._current(key)
        left = [e for e in current.get("outbox", []) if e["id"] not in event_ids]
        await self._collection.update_one({"_id": key}, {"$set": {"outbox": left}})
        current["outbox"] = left

    async def stale_keys(self, *, older_than: timedelta, limit: int = 100) -> list[str]:
        """Keys whose oldest pending event has waited longer than a relay ever should."""
        cutoff = datetime.now(UTC) - older_than
        cursor = self._collection.find({"outbox.0.at": {"$lt": cutoff}}, {"_id": 1}).sort("outbox.0.at", 1).limit(limit)
        return [doc["_id"] async for doc in cursor]

    def forget(self, key: str) -> None:
        self._turn.pop(key, None)
