"""WorkConsumer over the hand-written fakes in conftest.py: an item started early (EAGER) runs once,
however its queued copy comes, a failed early run leaves the item to that copy, and the kit refuses
an EAGER kind that is not OVERLAP_SAFE."""

import asyncio
from types import SimpleNamespace
from typing import Literal

import pytest

from shared.contracts.base import WorkItem
from shared.messaging.redaction import Redactor
from shared.messaging.service import _work_consumers
from shared.messaging.work import WorkConsumer


class Quick(WorkItem):
    QUEUE = "quick"
    OVERLAP_SAFE = True
    EAGER = True
    type: Literal["Quick"] = "Quick"


def worker(broker, handle) -> WorkConsumer:
    return WorkConsumer(queue="account.work.quick", broker=broker, item_type=Quick, handle=handle,
                        transient_errors=(ConnectionError,), delivery_limit=5, redact=Redactor.for_messages((Quick,)))


def queued_copy(deliver, item: Quick):
    return deliver(item, exchange="account.internal", reply_to=None, headers={})


async def _let_others_run() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_an_item_started_early_runs_once_and_its_queued_copy_is_acked(broker, deliver):
    """Ensure the queued copy of an item started early waits for that run, then is acked without running."""
    runs, finish = [], asyncio.Event()

    async def handle(item: Quick) -> None:
        runs.append(item.message_id)
        await finish.wait()

    consumer, item = worker(broker, handle), Quick()
    consumer.start_now(item)
    await _let_others_run()
    assert runs == [item.message_id]  # the early run, before any queued copy came
    message = queued_copy(deliver, item)
    arriving = asyncio.create_task(consumer(message))  # waits for the slot the early run holds
    await _let_others_run()
    assert runs == [item.message_id] and message.acks == 0

    finish.set()
    await arriving
    await _let_others_run()

    assert runs == [item.message_id] and message.acks == 1 and broker.set_aside == []


async def test_an_early_run_that_fails_leaves_the_item_to_its_queued_copy(broker, deliver):
    """Ensure a failed early run (the mail server away) is neither remembered as done nor set aside:
    the queued copy runs the item again and is acked."""
    attempts = []

    async def handle(item: Quick) -> None:
        attempts.append(item.message_id)
        if len(attempts) == 1:
            raise ConnectionError("ManageSieve away")

    consumer, item = worker(broker, handle), Quick()
    consumer.start_now(item)
    await _let_others_run()
    assert attempts == [item.message_id]
    message = queued_copy(deliver, item)
    await consumer(message)
    await _let_others_run()

    assert attempts == [item.message_id] * 2 and message.acks == 1 and broker.set_aside == []


async def test_with_every_slot_busy_an_item_is_left_to_its_queue(broker, deliver):
    """Ensure early runs never pile up beyond the worker's slots (a burst of commands): with every
    slot taken the item is not started early, and its queued copy runs it."""
    runs, finish = [], asyncio.Event()

    async def handle(item: Quick) -> None:
        runs.append(item.message_id)
        await finish.wait()

    consumer, busy, item = worker(broker, handle), Quick(), Quick()
    await consumer(queued_copy(deliver, busy))
    await _let_others_run()

    consumer.start_now(item)
    await _let_others_run()
    assert runs == [busy.message_id]

    finish.set()
    await consumer(queued_copy(deliver, item))
    await _let_others_run()
    assert runs == [busy.message_id, item.message_id]


class EagerButExclusive(WorkItem):
    QUEUE = "wrong"
    EAGER = True
    type: Literal["EagerButExclusive"] = "EagerButExclusive"


def test_an_eager_kind_that_may_not_overlap_is_refused_at_start():
    """Ensure a service cannot declare a kind both EAGER and under the lease: its early run would
    skip the lease and could run beside a copy that holds it."""
    settings = SimpleNamespace(delivery_limit=5, work_prefetch=1)
    topology = SimpleNamespace(work_queue=lambda name: f"account.work.{name}")

    async def handle(item: WorkItem) -> None: ...

    with pytest.raises(ValueError, match="EAGER but not OVERLAP_SAFE"):
        _work_consumers(settings, None, SimpleNamespace(work={EagerButExclusive: handle}),  # type: ignore[arg-type]
                        topology, None, None)  # type: ignore[arg-type]
    assert list(_work_consumers(settings, None, SimpleNamespace(work={Quick: handle}),  # type: ignore[arg-type]
                                topology, None, None)) == [Quick]  # type: ignore[arg-type]
