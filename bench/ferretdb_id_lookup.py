"""Benchmark: does a lookup by _id stay flat as a collection grows? (FerretDB's SQLite backend, as
scripts/stack.sh builds it, looks _id up through its _id index; v1.24.2 unpatched scanned.)

Prints find_one and update_one p50 by _id on the last-inserted document at 10 and at `--documents`
documents, and the ratio large/small (flat is about 1; a scan grows with the count).

    export MAILSS_STACK=test && scripts/stack.sh up && eval "$(scripts/stack.sh env)" && .venv/bin/python bench/ferretdb_id_lookup.py
"""

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from shared.mongo import make_client

DOCUMENT = {"version": 1, "password_hash": "x" * 100, "applied": ["x" * 100] * 10}


async def p50_ms(step: Callable[[int], Awaitable[object]], rounds: int = 100) -> float:
    times = []
    for n in range(rounds):
        started = time.perf_counter()
        await step(n)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def main(documents: int) -> None:
    client = make_client(os.environ["MONGODB_URL"])
    name = f"bench_id_{uuid.uuid4().hex[:6]}"
    collection = client[name]["docs"]
    results: dict[int, tuple[float, float]] = {}
    try:
        for count in (10, documents):
            have = await collection.count_documents({})
            await collection.insert_many([{**DOCUMENT, "_id": f"u{n:07d}"} for n in range(have, count)])
            last = f"u{count - 1:07d}"  # inserted last: a scan finds it last
            find = await p50_ms(lambda n, last=last: collection.find_one({"_id": last}))
            update = await p50_ms(lambda n, last=last: collection.update_one({"_id": last}, {"$set": {"n": n}}))
            results[count] = (find, update)
            print(f"{count:6d} documents  find_one by _id p50={find:6.2f} ms  update_one by _id p50={update:6.2f} ms")
    finally:
        await client.drop_database(name)
        await client.close()
    (small_find, small_update), (large_find, large_update) = results[10], results[documents]
    print(f"ratio {documents}/10 documents: find {large_find / small_find:5.2f}x  "
          f"update {large_update / small_update:5.2f}x  (flat = about 1)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=5000)
    asyncio.run(main(parser.parse_args().documents))
