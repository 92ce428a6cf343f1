"""MongoDB client factory. Aggregate documents live in shared/messaging/unit_of_work.py.

FerretDB v1 has no transactions and no locks, so state and its pending messages are written in
one single-document update, and only the consumer whose turn it is (per-account ordering) writes
an aggregate's document.
"""

from typing import Any

from pymongo import AsyncMongoClient


def make_client(url: str) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        url, retryWrites=False, tz_aware=True, serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000, socketTimeoutMS=10000, appname="mail-self-service",
    )


async def enforces_write_guards(client: AsyncMongoClient[dict[str, Any]]) -> bool:
    """MongoDB does; FerretDB v1 (which says so in buildInfo) checks a filter and writes in two steps."""
    info = await client.admin.command("buildInfo")
    return not any(key.startswith("ferretdb") for key in info)
