"""MongoDB client factory and the outbox kept inside aggregate documents.

FerretDB v1 has no transactions and no locks, so state and its pending events are written
in one single-document write, and only one writer touches an aggregate at a time.
"""

from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection


def make_client(url: str) -> AsyncMongoClient:
    return AsyncMongoClient(
        url, retryWrites=False, tz_aware=True, serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000, socketTimeoutMS=10000, appname="mail-self-service",
    )


def outbox_entry(*, event_id: str, routing_key: str, body: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"id": event_id, "routing_key": routing_key, "body": body, "headers": headers,
            "at": datetime.now(UTC)}


class MongoOutbox:
    """Pending events stored in `outbox` of each aggregate document, oldest first.

    Only the consumer that owns the aggregate's turn reads and trims it (see messaging), so
    the read-modify-write below never races another writer of the same document.
    """

    def __init__(self, collection: AsyncCollection) -> None:
        self._collection = collection

    async def pending(self, key: str) -> list[dict[str, Any]]:
        doc = await self._collection.find_one({"_id": key}, {"outbox": 1})
        return list(doc.get("outbox", [])) if doc else []

    async def remove(self, key: str, event_ids: list[str]) -> None:
        doc = await self._collection.find_one({"_id": key}, {"outbox": 1})
        if not doc:
            return
        left = [entry for entry in doc.get("outbox", []) if entry["id"] not in event_ids]
        await self._collection.update_one({"_id": key}, {"$set": {"outbox": left}})
