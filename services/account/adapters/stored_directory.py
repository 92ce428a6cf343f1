"""Each domain's directory as documents of its own collection, every one read and written by `_id`
(the one lookup FerretDB serves from an index): the index `_id` = the domain, and each chunk
`_id` = "<domain>/<chunk id>". Their contents are one JSON string each, not nested documents:
FerretDB pays for every nested value it decodes, and a chunk is read whole anyway."""

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from services.account.domain.directory import Index, Line

COLLECTION = "directory"
Doc = dict[str, Any]


def _encoded(line: Line) -> list[Any]:
    created = line.created_at.astimezone(UTC).isoformat() if line.created_at else None
    return [line.address, line.plan, line.quota_mb, line.comment, created, line.state, line.version]


def _decoded(fields: list[Any]) -> Line:
    address, plan, quota_mb, comment, created, state, version = fields
    return Line(address=address, plan=plan, quota_mb=quota_mb, comment=comment, state=state, version=version,
                created_at=datetime.fromisoformat(created) if created else None)


def _chunk_key(domain: str, chunk_id: str) -> str:
    return f"{domain}/{chunk_id}"


class StoredDirectory:
    """The Directory port."""

    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self._collection = collection

    async def index(self, domain: str) -> Index | None:
        doc = await self._collection.find_one({"_id": domain})
        return None if doc is None else Index(tuple((bound, chunk_id) for bound, chunk_id in json.loads(doc["chunks"])))

    async def chunk(self, domain: str, chunk_id: str) -> tuple[Line, ...]:
        doc = await self._collection.find_one({"_id": _chunk_key(domain, chunk_id)})
        return () if doc is None else tuple(_decoded(fields) for fields in json.loads(doc["lines"]))

    async def write_chunk(self, domain: str, chunk_id: str, lines: Sequence[Line]) -> None:
        text = json.dumps([_encoded(line) for line in lines], ensure_ascii=False, separators=(",", ":"))
        await self._collection.replace_one({"_id": _chunk_key(domain, chunk_id)}, {"domain": domain, "lines": text},
                                           upsert=True)

    async def write_index(self, domain: str, index: Index) -> None:
        text = json.dumps(index.chunks, separators=(",", ":"))
        await self._collection.replace_one({"_id": domain}, {"domain": domain, "chunks": text}, upsert=True)

    async def drop_chunks(self, domain: str, chunk_ids: Sequence[str]) -> None:
        for chunk_id in chunk_ids:
            await self._collection.delete_one({"_id": _chunk_key(domain, chunk_id)})

    async def drop_unindexed(self, domain: str, index: Index) -> None:
        kept = [domain, *(_chunk_key(domain, chunk_id) for _, chunk_id in index.chunks)]
        await self._collection.delete_many({"domain": domain, "_id": {"$nin": kept}})


class AccountsToList:
    """The ListedAccounts port: the domain's accounts as stored (a scan of the accounts collection)."""

    def __init__(self, accounts: AsyncCollection[Doc]) -> None:
        self._accounts = accounts

    async def lines(self, domain: str) -> list[Line]:
        wanted = {"_id": {"$regex": f"@{re.escape(domain)}$"}}
        fields = dict.fromkeys(("plan", "quota_mb", "comment", "role", "deleted", "deletion_pending", "version",
                                "created_at", "account_created_at"), 1)
        lines = [line async for doc in self._accounts.find(wanted, fields) if (line := _line_of(doc))]
        return sorted(lines, key=lambda line: line.address)


def _line_of(doc: Doc) -> Line | None:
    """A live account, or one whose deletion is under way (its tombstone kept no plan); else None.
    Accounts made before creation times were kept show their document's first write."""
    deleting = bool(doc.get("deleted") and doc.get("deletion_pending"))
    if not deleting and (doc.get("deleted") or doc.get("role") != "user"):
        return None
    return Line(address=doc["_id"], plan=doc.get("plan"), quota_mb=doc.get("quota_mb"), comment=doc.get("comment") or "",
                created_at=doc.get("account_created_at") or (None if deleting else doc.get("created_at")),
                state="deleting" if deleting else "active", version=int(doc.get("version", 0)))
