"""Exchanges and queues, declared once from one table per service.

commands (direct) --<service>--> <service>.commands (consistent hash on header x-account)
    --> <service>.commands.<n>  quorum, single active consumer: one account is handled by
        one consumer at a time, in order, while different accounts spread over shards.
`events.audit` keeps every event for operators.
Every queue dead-letters to `dlx` under its own name into `<queue>.dlq`. There are no TTL retry
queues: a message parked there would let the account's later commands overtake it, so transient
failures are retried in place (shared/messaging.py), holding the shard in order.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, ExchangeType

COMMANDS = "commands"
EVENTS = "events"
DLX = "dlx"
ACCOUNT_KEY_HEADER = "x-account"
AUDIT_QUEUE = "events.audit"
AUDIT_MAX_LENGTH = 1_000_000
EXCHANGES: Mapping[str, ExchangeType] = {
    COMMANDS: ExchangeType.DIRECT,
    EVENTS: ExchangeType.TOPIC,
    DLX: ExchangeType.DIRECT,
}


@dataclass(frozen=True)
class ServiceTopology:
    service: str
    shards: int
    delivery_limit: int
    event_queues: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """queue name -> event routing keys it listens to"""

    @property
    def shard_exchange(self) -> str:
        return f"{self.service}.commands"

    def shard_queues(self) -> tuple[str, ...]:
        return tuple(f"{self.service}.commands.{n}" for n in range(self.shards))


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def _quorum_args(*, queue: str, delivery_limit: int) -> dict:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-single-active-consumer": True,
        "x-dead-letter-exchange": DLX,
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare(channel: AbstractChannel, topology: ServiceTopology) -> None:
    for name, kind in EXCHANGES.items():
        await channel.declare_exchange(name, kind, durable=True)
    shard_exchange = await channel.declare_exchange(
        topology.shard_exchange, "x-consistent-hash", durable=True,
        arguments={"hash-header": ACCOUNT_KEY_HEADER},
    )
    await shard_exchange.bind(COMMANDS, routing_key=topology.service)
    for queue in topology.shard_queues():
        declared = await _declare_consumed_queue(channel, queue, topology)
        await declared.bind(topology.shard_exchange, routing_key="1")
    for queue, keys in topology.event_queues.items():
        declared = await _declare_consumed_queue(channel, queue, topology)
        for key in keys:
            await declared.bind(EVENTS, routing_key=key)
    await _declare_audit_queue(channel)


async def _declare_audit_queue(channel: AbstractChannel) -> None:
    """Every event, kept for operators (newest AUDIT_MAX_LENGTH); it also makes every event routable."""
    audit = await channel.declare_queue(AUDIT_QUEUE, durable=True, arguments={
        "x-queue-type": "quorum", "x-max-length": AUDIT_MAX_LENGTH, "x-overflow": "drop-head",
    })
    await audit.bind(EVENTS, routing_key="#")


async def _declare_consumed_queue(
    channel: AbstractChannel, queue: str, topology: ServiceTopology
) -> aio_pika.abc.AbstractQueue:
    dlq = await channel.declare_queue(
        dead_letter_queue(queue), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(DLX, routing_key=queue)
    args = _quorum_args(queue=queue, delivery_limit=topology.delivery_limit)
    return await channel.declare_queue(queue, durable=True, arguments=args)
