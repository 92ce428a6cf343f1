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
from shared.messaging.delivery import Delivery, DeliveryLost, SetAside, ack_or_set_aside, alive, parse_once_more
from shared.messaging.leases import NoLongerWanted, Superseded, WorkLeases
from shared.messaging.redaction import Redactor
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
    """items being handled here, by message_id: a second delivery of one of them (seen when a
    consumer starts on a queue that holds a redelivered item) waits for the first instead of doing
    its work beside it, and then is acked without running (`_done`): the handler's own check may
    not see the first's record yet"""
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
            await delivery.settle_safely(lambda: ack_or_set_aside(delivery, lambda: self._work(delivery)))
        finally:
            self._slots.release()

    def _remember(self, key: str) -> None:
        self._done[key] = None
        if len(self._done) > DONE_REMEMBERED:
            self._done.popitem(last=False)

    async def _work(self, delivery: Delivery) -> None:
        parse = TypeAdapter(self.item_type).validate_json
        item = parse_once_more(delivery, parse, delivery_limit=self.delivery_limit,
                               through=internal_exchange(service_of(self.queue)))
        try:
            await self._once_here(str(item.message_id), lambda: self._run(delivery, item))
        except (SetAside, DeliveryLost):
            raise
        except Exception as error:
            log.exception("work item %s failed", item.message_id)
            raise SetAside(f"unhandled {type(error).__name__}") from error

    def start_now(self, item: WorkItem) -> None:
        """An EAGER item, right after the command that staged it was stored: its queued copy then
        finds it done here (or, elsewhere, runs it again harmlessly: EAGER kinds are OVERLAP_SAFE)."""
        task = asyncio.create_task(self._eagerly(item))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _eagerly(self, item: WorkItem) -> None:
        async with self._slots:
            try:
                await self._once_here(str(item.message_id), lambda: self.handle(item))
            except self.transient_errors as error:
                log.info("work item %s started early: %s; its queued copy tries again", item.message_id,
                         type(error).__name__)
            except Exception:
                log.warning("work item %s started early failed; its queued copy tries again", item.message_id,
                            exc_info=True)

    async def _once_here(self, key: str, run: Callable[[], Awaitable[None]]) -> None:
        """One copy of an item at a time in this process, and none again once one is done here."""
        lock, users = self._items.get(key, (asyncio.Lock(), 0))
        self._items[key] = (lock, users + 1)
        try:
            async with lock:
                if key not in self._done:
                    await run()
                    self._remember(key)
        finally:
            lock, users = self._items[key]
            if users == 1:
                del self._items[key]
            else:
                self._items[key] = (lock, users - 1)

    async def _run(self, delivery: Delivery, item: WorkItem) -> None:
        """The handler, under the item's lease unless its kind may overlap."""
        if self.leases is None or type(item).OVERLAP_SAFE:
            await delivery.patiently(lambda: self.handle(item))
            return
        key, leases = str(item.message_id), self.leases
        try:
            lease = await delivery.patiently(lambda: leases.acquire(key, wanted=lambda: alive(delivery.message)))
        except NoLongerWanted:
            raise DeliveryLost from None
        if lease is None:
            log.info("work item %s was done by another worker; this copy is acked", key)
            return
        try:
            await lease.hold(lambda: delivery.patiently(lambda: self.handle(item)))
        except Superseded:
            log.warning("work item %s went on elsewhere after this worker stalled; this copy is acked", key)
            return
        await delivery.patiently(lease.done)
