"""Work leases on the real database: two copies of one work item never run side by side."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.messaging.leases import KEPT_FOR, LEASES, NoLongerWanted, Superseded, WorkLeases, new_holder
from shared.mongo import make_client
from tests.support import eventually

LEASE_S = 0.6


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


async def test_a_second_copy_waits_while_the_holder_works_then_is_done(leases):
    """Ensure a copy arriving while another worker runs the item waits through several lease periods
    (the holder beats) and then learns the item is done, without running it."""
    a, b = leases
    item = str(uuid.uuid4())
    held = await a.acquire(item, wanted=always)
    assert held is not None
    waiting = asyncio.create_task(b.acquire(item, wanted=always))

    await held.hold(lambda: asyncio.sleep(LEASE_S * 5))
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
    """Ensure work that fails releases its lease, and the next copy runs it (a new generation)."""
    a, b = leases
    item = str(uuid.uuid4())
    held = await a.acquire(item, wanted=always)
    assert held is not None

    async def fails() -> None:
        raise RuntimeError("mail server said no")

    with pytest.raises(RuntimeError):
        await held.hold(fails)
    taken = await asyncio.wait_for(b.acquire(item, wanted=always), timeout=LEASE_S / 2)

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

    work = asyncio.create_task(held.hold(long_work))
    await a.collection.insert_one({"_id": f"{item}#1", "holder": "b", "state": "held", "beat": 0})

    with pytest.raises(Superseded):
        await work
    assert stopped.is_set()


async def test_a_copy_whose_delivery_is_gone_stops_waiting(leases):
    """Ensure a waiting copy gives up once its delivery's channel closed (the broker hands it out again)."""
    a, b = leases
    item = str(uuid.uuid4())
    held = await a.acquire(item, wanted=always)
    assert held is not None
    beating = asyncio.create_task(held.hold(lambda: asyncio.sleep(60)))
    channel_open = True

    waiting = asyncio.create_task(b.acquire(item, wanted=lambda: channel_open))
    await asyncio.sleep(LEASE_S)
    channel_open = False

    with pytest.raises(NoLongerWanted):
        await waiting
    beating.cancel()
    await eventually(lambda: _released(a, item), what="the cancelled holder let go")


async def _released(leases: WorkLeases, item: str) -> bool:
    row = await leases.collection.find_one({"_id": f"{item}#0"})
    return row is not None and row["state"] == "released"


async def test_rows_untouched_for_a_day_are_cleaned_up(leases):
    """Ensure the hourly clean-up removes only rows older than a day (a live holder's row is fresh)."""
    a, _ = leases
    old, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    await a.collection.insert_one({"_id": f"{old}#0", "state": "done", "beat": 0,
                                   "at": datetime.now(UTC) - KEPT_FOR - timedelta(minutes=1)})
    assert await a.acquire(fresh, wanted=always) is not None

    assert await a.remove_old() == 1
    assert [row["_id"] async for row in a.collection.find({})] == [f"{fresh}#0"]
