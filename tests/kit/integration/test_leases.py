"""Work leases on the real database: two copies of one work item never run side by side."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from shared.messaging.leases import (
    KEPT_FOR,
    LEASES,
    LeaseLost,
    NoLongerWanted,
    Superseded,
    WorkLeases,
    end_id,
    lease_id,
    new_holder,
)
from shared.mongo import make_client

LEASE_S = 3.0
"""beats every 0.5 s, each given 0.5 s: slow enough for a loaded CI machine"""


@pytest.fixture
async def leases(service_env: dict[str, str]) -> AsyncIterator[tuple[WorkLeases, WorkLeases]]:
    """Two workers' views of one leases collection."""
    client = make_client(service_env["MONGODB_URL"])
    name = f"mailss_leases_{uuid.uuid4().hex[:8]}"
    collection = client[name][LEASES]
    yield WorkLeases(collection, new_holder("a"), LEASE_S), WorkLeases(collection, new_holder("b"), LEASE_S)
    await client.drop_database(name)
    await client.close()


def always() -> bool:
    return True


def never_moving() -> float:
    """A waiter's clock that never advances: it can only go on when the holder let go or is done."""
    return 0.0


async def ended(leases: WorkLeases, item: str, generation: int = 0) -> str | None:
    row = await leases.collection.find_one({"_id": end_id(item, generation)})
    return None if row is None else row["state"]


async def test_a_second_copy_waits_while_the_holder_works_then_is_done(leases):
    """Ensure a copy arriving while another worker runs the item waits through several lease periods
    (the holder beats) and then learns the item is done, without running it."""
    a, b = leases
    item = str(uuid.uuid4())
    held = await a.acquire(item, wanted=always)
    assert held is not None
    waiting = asyncio.create_task(b.acquire(item, wanted=always))

    await held.hold(lambda: asyncio.sleep(LEASE_S * 2), wanted=always)
    assert not waiting.done()
    await held.done()

    assert await waiting is None


async def test_a_holder_that_stopped_beating_is_taken_over(leases):
    """Ensure a worker that took the lease and died (no beats) loses the item to the next one."""
    a, b = leases
    item = str(uuid.uuid4())
    assert await a.acquire(item, wanted=always) is not None  # and never beats: killed

    taken = await b.acquire(item, wanted=always)

    assert taken is not None and taken.generation == 1


async def test_a_failed_holder_lets_go_at_once(leases):
    """Ensure work that fails releases its lease, and the next copy runs it (a new generation)
    without waiting for the lease to run out."""
    a, b = leases
    item = str(uuid.uuid4())
    held = await a.acquire(item, wanted=always)
    assert held is not None

    async def fails() -> None:
        raise RuntimeError("mail server said no")

    with pytest.raises(RuntimeError):
        await held.hold(fails, wanted=always)
    taken = await WorkLeases(b.collection, b.holder, LEASE_S, clock=never_moving).acquire(item, wanted=always)

    assert await ended(a, item) == "released"
    assert taken is not None and taken.generation == 1


async def test_a_stalled_holder_stops_once_another_took_over(leases):
    """Ensure a holder that finds the next generation (another worker judged it gone) cancels its work."""
    a, _ = leases
    item = str(uuid.uuid4())
    held = await a.acquire(item, wanted=always)
    assert held is not None
    stopped = asyncio.Event()

    async def long_work() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()

    work = asyncio.create_task(held.hold(long_work, wanted=always))
    await a.collection.insert_one({"_id": lease_id(item, 1), "holder": "b", "beat": 0, "at": datetime.now(UTC)})

    with pytest.raises(Superseded):
        await work
    assert stopped.is_set()


async def test_a_holder_whose_delivery_is_gone_stops_and_lets_go(leases):
    """Ensure a holder stops its work once its own delivery's channel closed (the broker hands the
    item out again), and lets the lease go for that copy."""
    a, _ = leases
    item = str(uuid.uuid4())
    held = await a.acquire(item, wanted=always)
    assert held is not None
    channel_open = True
    work = asyncio.create_task(held.hold(lambda: asyncio.sleep(60), wanted=lambda: channel_open))

    channel_open = False

    with pytest.raises(NoLongerWanted):
        await work
    assert await ended(a, item) == "released"


class BeatsFail:
    """The leases collection, with every update refused: the database stopped taking the beats."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def update_one(self, *_: Any, **__: Any) -> None:
        raise AutoReconnect("database away")


async def test_a_holder_that_cannot_store_its_beats_stops_before_a_waiter_takes_over(leases):
    """Ensure a holder whose beats are not stored stops its work (`LeaseLost`, which the worker retries)
    within two thirds of the lease, so it never runs beside a waiter that judged it gone."""
    a, b = leases
    item = str(uuid.uuid4())
    holder = WorkLeases(BeatsFail(a.collection), a.holder, LEASE_S)  # type: ignore[arg-type]
    held = await holder.acquire(item, wanted=always)
    assert held is not None
    loop, running, stopped_at = asyncio.get_running_loop(), asyncio.Event(), []

    async def work() -> None:
        running.set()
        try:
            await asyncio.sleep(60)
        finally:
            stopped_at.append(loop.time())

    async def take_over() -> tuple[Any, float]:
        return await b.acquire(item, wanted=always), loop.time()

    holding = asyncio.create_task(held.hold(work, wanted=always))
    await running.wait()
    waiting = asyncio.create_task(take_over())

    with pytest.raises(LeaseLost):
        await holding
    taken, taken_at = await waiting

    assert taken is not None and taken.generation == 1
    assert stopped_at[0] < taken_at


async def test_a_copy_whose_delivery_is_gone_stops_waiting(leases):
    """Ensure a waiting copy gives up once its delivery's channel closed (the broker hands it out again)."""
    a, b = leases
    item = str(uuid.uuid4())
    held = await a.acquire(item, wanted=always)
    assert held is not None
    holding = asyncio.create_task(held.hold(lambda: asyncio.sleep(60), wanted=always))
    channel_open = True

    waiting = asyncio.create_task(b.acquire(item, wanted=lambda: channel_open))
    await asyncio.sleep(LEASE_S / 2)
    channel_open = False

    with pytest.raises(NoLongerWanted):
        await waiting
    holding.cancel()
    await asyncio.wait({holding})
    assert await ended(a, item) == "released"


async def test_only_items_whose_newest_generation_is_a_day_old_are_cleaned_up(leases):
    """Ensure the hourly clean-up removes an item's rows only when its newest generation is older
    than a day: an old generation 0 beside a held generation 1 stays, or a new copy could take 0."""
    a, _ = leases
    long_ago = datetime.now(UTC) - KEPT_FOR - timedelta(minutes=1)
    finished, taken_over, fresh = (str(uuid.uuid4()) for _ in range(3))
    await a.collection.insert_many([
        {"_id": lease_id(finished, 0), "beat": 3, "at": long_ago},
        {"_id": end_id(finished, 0), "state": "done", "at": long_ago},
        {"_id": lease_id(taken_over, 0), "beat": 3, "at": long_ago},
        {"_id": end_id(taken_over, 0), "state": "released", "at": long_ago},
        {"_id": lease_id(taken_over, 1), "beat": 0, "at": datetime.now(UTC)},
    ])
    assert await a.acquire(fresh, wanted=always) is not None

    assert await a.remove_old() == 2
    assert sorted([row["_id"] async for row in a.collection.find({})]) == sorted(
        [lease_id(taken_over, 0), end_id(taken_over, 0), lease_id(taken_over, 1), lease_id(fresh, 0)])
