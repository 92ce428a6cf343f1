"""Benchmark: ListAccounts at 10,000 accounts in one domain, beside GetAccount in the same run.

- 10,000 accounts are written straight into the account service's database, as the service stores
  them (for speed: through the broker they would take many minutes), with no directory: the first
  ListAccounts builds the domain's directory from the accounts, as it does for accounts made before
  directories were kept (timed once).
- Through the broker, one request at a time, in rounds of (first page, deep page, search, GetAccount)
  so a noisy spell hits all alike: the first page (50), page 150 (accounts 7,451-7,500, after the
  cursor page 149 gave), a prefix search, and GetAccount of an account made through the service.
- The lag of the list: CreateAccount's reply until the account is in the list.
- What a list without the directory would cost: on the same collection, FerretDB's `_id` range query
  for page 150 (sorted, limited) beside a lookup by exact `_id`, straight through pymongo.

    export MAILSS_STACK=test && scripts/stack.sh up && eval "$(scripts/stack.sh env)" && .venv/bin/python -m bench.list_accounts
"""

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bench.harness import PASSWORD, Bench, line, pct, services
from services.account.adapters.stored_accounts import principal_doc
from services.account.domain.account import Account
from shared.contracts.account import SERVICE, CreateAccount, GetAccount, ListAccounts
from shared.mongo import make_client
from shared.plans import Plan

DOMAIN = "example.jp"
PAGE = 50


def address(n: int) -> str:
    return f"u{n:05d}@{DOMAIN}"


async def seed(database: str, count: int) -> None:
    client = make_client(os.environ["MONGODB_URL"])
    now = datetime.now(UTC)
    try:
        docs = [{"_id": address(n), "version": 1, "created_at": now, "updated_at": now, "applied": [], "outbox": [],
                 **principal_doc(Account(address=address(n), plan=Plan.KWC, password_hash="$argon2id$seeded",
                                         quota_mb=2048, comment=f"seeded {n}", created_at=now, home=f"{n:032x}"))}
                for n in range(count)]
        for start in range(0, count, 1000):
            await client[database]["accounts"].insert_many(docs[start:start + 1000])
    finally:
        await client.close()


async def timed(request: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await request()
    return (time.perf_counter() - start) * 1000


async def listed(bench: Bench, **asked) -> dict:
    reply = await bench.client.request(SERVICE, ListAccounts(actor_token=bench.admin, domain=DOMAIN, **asked))
    assert reply.status == "accepted", reply
    return reply.result


async def cursor_of_page(bench: Bench, page: int) -> tuple[str, list[float]]:
    """The cursor that page `page` starts after, walking there from the first page (each page timed)."""
    after, walked = None, []
    for _ in range(page - 1):
        start = time.perf_counter()
        after = (await listed(bench, limit=PAGE, after=after))["next"]
        walked.append((time.perf_counter() - start) * 1000)
    assert after is not None
    return after, walked


async def lag(bench: Bench, count: int) -> list[float]:
    """CreateAccount's reply until the account is in the list (ms)."""
    lags = []
    for _ in range(count):
        made = f"new-{uuid.uuid4().hex[:8]}@{DOMAIN}"
        reply = await bench.client.request(SERVICE, CreateAccount(actor_token=bench.admin, address=made, plan="kwc",
                                                                  initial_password=PASSWORD))
        assert reply.status == "accepted", reply
        replied = time.perf_counter()
        while not (await listed(bench, prefix=made, limit=1))["accounts"]:
            await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - replied) * 1000)
    return lags


async def without_directory(database: str, rounds: int, after: str) -> tuple[list[float], list[float]]:
    """FerretDB straight: page 150 as an `_id` range query (sorted, limited), and one exact `_id` lookup."""
    client = make_client(os.environ["MONGODB_URL"])
    accounts = client[database]["accounts"]
    ranged, exact = [], []
    try:
        for _ in range(rounds):
            ranged.append(await timed(lambda: accounts.find({"_id": {"$gt": after, "$lt": "u~"}}).sort("_id", 1)
                                      .limit(PAGE).to_list()))
            exact.append(await timed(lambda: accounts.find_one({"_id": after})))
    finally:
        await client.close()
    return ranged, exact


async def main(args: argparse.Namespace) -> None:
    # the seeded accounts are no one's mail logins: the reconciler must not write them into Dovecot's files
    quiet = {"PASSWD_RECONCILE_INTERVAL_S": "86400", "HOME_SWEEP_INTERVAL_S": "86400"}
    async with services(("account",), extra_env=quiet) as bench:
        database = bench.databases["account"]
        await seed(database, args.accounts)
        build = await timed(lambda: listed(bench, limit=PAGE))
        deep_after, walked = await cursor_of_page(bench, args.page)
        deep = await listed(bench, limit=PAGE, after=deep_after)
        assert deep["accounts"][0]["address"] == address((args.page - 1) * PAGE), deep["accounts"][0]
        baseline = f"g{uuid.uuid4().hex[:8]}@{DOMAIN}"
        assert (await bench.client.request(SERVICE, CreateAccount(
            actor_token=bench.admin, address=baseline, plan="kwc", initial_password=PASSWORD))).status == "accepted"
        rounds: dict[str, list[float]] = {"first": [], "deep": [], "search": [], "get": []}
        for n in range(args.rounds):
            rounds["first"].append(await timed(lambda: listed(bench, limit=PAGE)))
            rounds["deep"].append(await timed(lambda: listed(bench, limit=PAGE, after=deep_after)))
            rounds["search"].append(await timed(lambda n=n: listed(bench, limit=PAGE, prefix=f"u0{n % 10}")))
            rounds["get"].append(await timed(lambda: bench.client.request(SERVICE, GetAccount(actor_token=bench.admin,
                                                                                              address=baseline))))
        lags = await lag(bench, args.lag)
        ranged, exact = await without_directory(database, args.raw_rounds, address((args.page - 1) * PAGE - 1))
    get = statistics.median(rounds["get"])
    print(f"accounts={args.accounts} page={PAGE} rounds={args.rounds} (sequential, interleaved)")
    print(f"{'first list: builds the directory from the accounts':<44} {build:8.1f} ms")
    print(line(f"walking pages 1..{args.page - 1} with the cursor", walked))
    for name, label in (("first", "ListAccounts, first page"), ("deep", f"ListAccounts, page {args.page}"),
                        ("search", "ListAccounts, prefix search (u0N)"), ("get", "GetAccount (baseline)")):
        values = rounds[name]
        ratios = f"  p50 {statistics.median(values) / get:5.2f}x, p99 {pct(values, 99) / pct(rounds['get'], 99):5.2f}x"
        print(line(label, values, ratios + " GetAccount"))
    print(line("CreateAccount reply -> in the list", lags))
    print(line(f"no directory: _id range query for page {args.page}", ranged))
    print(line("no directory: find_one by exact _id", exact,
               f"  (range/exact p50 {statistics.median(ranged) / statistics.median(exact):6.1f}x)"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--lag", type=int, default=30)
    parser.add_argument("--raw-rounds", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
