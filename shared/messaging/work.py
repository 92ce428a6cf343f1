"""The work consumer: competing consumers (any number of processes) on a quorum work queue, for
slow outside effects (deploying to the mail server, copying mail) that must never hold a shard.

An item is acked only after its handler returned, i.e. after the handler saved the item's
checkpoint; a worker killed mid-item leaves it unacked and the broker hands it to another worker,
so handlers make their effect idempotent by the item's message_id. Transient failures are retried
in place; anything else sets the item aside in the queue's DLQ. The broker's consumer_timeout
(30 min in our config) is the ceiling for one item: longer work is split into items that each
checkpoint and enqueue the next step.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage
from pydantic import TypeAdapter, ValidationError

from shared.contracts.base import WorkItem
from shared.messaging.delivery import Delivery, DeliveryLost, SetAside, delivery_count, invalid, schema_reason

log = logging.getLogger(__name__)

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

    async def __call__(self, message: RabbitMessage) -> None:
        delivery = Delivery(message, self.queue, self.broker, self.transient_errors)
        await delivery.settle_safely(lambda: self._consume(delivery))

    async def _consume(self, delivery: Delivery) -> None:
        try:
            item = self._admit(delivery)
            await self._work(delivery, item)
            await delivery.ack()
        except SetAside as aside:
            await delivery.set_aside(aside.reason)

    def _admit(self, delivery: Delivery) -> WorkItem:
        if delivery_count(delivery.message) >= self.delivery_limit - 1:
            raise SetAside("delivered too often (a worker crash loop?)")
        try:
            return TypeAdapter(self.item_type).validate_json(delivery.message.body)
        except ValidationError as error:
            raise SetAside(schema_reason(invalid(error))) from None

    async def _work(self, delivery: Delivery, item: WorkItem) -> None:
        try:
            await delivery.patiently(lambda: self.handle(item))
        except (SetAside, DeliveryLost):
            raise
        except Exception as error:
            log.exception("work item %s failed", item.message_id)
            raise SetAside(f"unhandled {type(error).__name__}") from error
