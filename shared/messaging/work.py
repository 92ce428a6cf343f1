"""The work consumer: competing consumers (any number of processes) on a quorum work queue, for
slow outside effects (deploying to the mail server, copying mail) that must never hold a shard.

An item is acked only after its handler returned, i.e. after the handler saved the item's
checkpoint; a worker killed mid-item leaves it unacked and the broker hands it to another worker,
so handlers make their effect idempotent by the item's message_id. Transient failures are retried
in place; anything else sets the item aside in the queue's DLQ. The broker's consumer_timeout
(30 min in our config) is the ceiling for one item: longer work is split into items that each
checkpoint and enqueue the next step.
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage
from pydantic import TypeAdapter

from shared.contracts.base import WorkItem
from shared.messaging.delivery import Delivery, DeliveryLost, SetAside, ack_or_set_aside, alive, consuming, parse_once_more
from shared.messaging.leases import NoLongerWanted, Superseded, WorkLeases
from shared.messaging.redaction import Redactor
from shared.telemetry import describe, outcome, span
from shared.topology import internal_exchange, service_of

log = logging.getLogger(__name__)

DONE_REMEMBERED = 1000
"""item ids a process remembers having completed (a second delivery of one is acked at once)"""
MAX_ITEM_MINUTES = 25
"""What an item may take: under the broker's 30-minute consumer_timeout, with margin."""
WorkHandler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class WorkConsumer:
    queue: str
    broker: RabbitBroker
    item_type: type[WorkItem]
    handle: WorkHandler
    transient_errors: tuple[type[BaseException], ...]
    delivery_limit: int
    redact: Redactor
    leases: WorkLeases | None = None
    """so that two copies of one item never run at once in different processes (kinds not OVERLAP_SAFE)"""
    concurrency: int = 1
    """items this process runs at once (the channel's prefetch matches): FastStream hands a subscriber
    one message at a time, so each runs in its own task while a slot is free"""
    _slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1), compare=False)
    _running: set[asyncio.Task[None]] = field(default_factory=set, compare=False)
    _items: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict, compare=False)
    """items being handled here, by message_id: a second copy waits for the first (`_once_here`)"""
    _done: OrderedDict[str, None] = field(default_factory=OrderedDict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_slots", asyncio.Semaphore(self.concurrency))

    async def __call__(self, message: RabbitMessage) -> None:
        await self._slots.acquire()  # all slots busy: FastStream waits here, and fetches nothing more
        task = asyncio.create_task(self._settle(message))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _settle(self, message: RabbitMessage) -> None:
        try:
            delivery = Delivery(message, self.queue, self.broker, self.transient_errors, self.redact)
            with consuming(message, self.queue):
                await delivery.settle_safely(lambda: ack_or_set_aside(delivery, lambda: self._work(delivery)))
        finally:
            self._slots.release()

    def _remember(self, key: str) -> None:
        self._done[key] = None
        if len(self._done) > DONE_REMEMBERED:
            self._done.popitem(last=False)

    async def _work(self, delivery: Delivery) -> None:
        parse = TypeAdapter(self.item_type).validate_json
        try:
            item = parse_once_more(delivery, parse, delivery_limit=self.delivery_limit,
                                   through=internal_exchange(service_of(self.queue)))
        except SetAside:
            outcome("set aside", failed=True)
            raise
        describe(item)
        try:
            await self._once_here(str(item.message_id), lambda: self._run(delivery, item))
        except DeliveryLost:
            raise
        except SetAside:
            outcome("set aside", failed=True)
            raise
        except Exception as error:
            log.exception("work item %s failed", item.message_id)
            outcome("set aside", failed=True)
            raise SetAside(f"unhandled {type(error).__name__}") from error

    def start_now(self, item: WorkItem) -> None:
        """An EAGER item, right after the command that staged it was stored: its queued copy then
        finds it done here (or, elsewhere, runs it again harmlessly: EAGER kinds are OVERLAP_SAFE).
        With every slot busy it is left to the queue."""
        if self._slots.locked():
            return
        task = asyncio.create_task(self._eagerly(item))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _eagerly(self, item: WorkItem) -> None:
        """A child span of the command that staged it (the task started in its span)."""
        async with self._slots:
            with span(type(item).__name__, attributes={"mailss.eager": True}):
                describe(item)
                await self._eager_run(item)

    async def _eager_run(self, item: WorkItem) -> None:
        try:
            await self._once_here(str(item.message_id), lambda: self._handled(item))
        except Exception as error:
            transient = isinstance(error, self.transient_errors)
            outcome("left to its queued copy", failed=not transient)
            log.log(logging.INFO if transient else logging.WARNING, "work item %s started early failed (%s); "
                    "its queued copy tries again", item.message_id, type(error).__name__, exc_info=not transient)

    async def _handled(self, item: WorkItem) -> bool:
        await self.handle(item)
        return True

    async def _once_here(self, key: str, run: Callable[[], Awaitable[bool]]) -> None:
        """One copy of an item at a time in this process; once `run` says the item is done (here or
        elsewhere), a later copy here is acked without running."""
        lock, users = self._items.get(key, (asyncio.Lock(), 0))
        self._items[key] = (lock, users + 1)
        try:
            async with lock:
                if key in self._done:
                    outcome("done here before")
                elif await run():
                    self._remember(key)
        finally:
            lock, users = self._items[key]
            if users == 1:
                del self._items[key]
            else:
                self._items[key] = (lock, users - 1)

    async def _run(self, delivery: Delivery, item: WorkItem) -> bool:
        """The handler, under the item's lease unless its kind may overlap; -> whether it is done."""
        if self.leases is None or type(item).OVERLAP_SAFE:
            return await delivery.patiently(lambda: self._handled(item))
        try:
            return await delivery.patiently(lambda: self._leased(delivery, item))
        except NoLongerWanted:
            raise DeliveryLost from None

    async def _leased(self, delivery: Delivery, item: WorkItem) -> bool:
        assert self.leases is not None
        key, wanted = str(item.message_id), lambda: alive(delivery.message)
        lease = await self.leases.acquire(key, wanted=wanted)
        if lease is None:
            log.info("work item %s was done by another worker; this copy is acked", key)
            outcome("done by another worker")
            return True
        try:
            await lease.hold(lambda: delivery.patiently(lambda: self.handle(item)), wanted=wanted)
        except Superseded:
            log.warning("work item %s went on in another worker after this one stalled; this copy is acked", key)
            return False
        await delivery.patiently(lease.done)
        return True
