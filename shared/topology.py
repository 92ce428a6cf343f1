"""Exchanges and queues, declared once from one table per service.

commands (direct) --<service>--> <service>.commands (consistent hash on header x-account)
    --> <service>.commands.<n>  quorum, single active consumer: one account is handled by
        one consumer at a time, in order, while different accounts spread over shards.
`events.audit` keeps every event for operators.
Every queue dead-letters to `dlx` under its own name into `<queue>.dlq`; transient failures
wait in `<service>.retry.<delay>s` whose TTL dead-letters them back to `commands`.
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
    retry_delays_s: tuple[int, ...]
    event_queues: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """queue name -> event routing keys it listens to"""

    @property
    def shard_exchange(self) -> str:
        return f"{self.service}.commands"

    def shard_queues(self) -> tuple[str, ...]:
        return tuple(f"{self.service}.commands.{n}" for n in range(self.shards))

    def retry_queue(self, attempt: int) -> str:
        delays = self.retry_delays_s
        return f"{self.service}.retry.{delays[min(attempt, len(delays) - 1)]}s"

    def all_consumed_queues(self) -> tuple[str, ...]:
        return self.shard_queues() + tuple(self.event_queues)


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def _quorum_args(*, queue: str, delivery_limit: int, single_active: bool) -> dict:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-single-active-consumer": single_active,
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
        declared = await _declare_consumed_queue(channel, queue, topology, single_active=True)
        await declared.bind(topology.shard_exchange, routing_key="1")
    for queue, keys in topology.event_queues.items():
        declared = await _declare_consumed_queue(channel, queue, topology, single_active=True)
        for key in keys:
            await declared.bind(EVENTS, routing_key=key)
    for delay in sorted(set(topology.retry_delays_s)):
        await _declare_retry_queue(channel, topology, delay)
    await _declare_audit_queue(channel)


async def _declare_audit_queue(channel: AbstractChannel) -> None:
    """Every event, kept for operators (newest AUDIT_MAX_LENGTH); it also makes every event routable."""
    audit = await channel.declare_queue(AUDIT_QUEUE, durable=True, arguments={
        "x-queue-type": "quorum", "x-max-length": AUDIT_MAX_LENGTH, "x-overflow": "drop-head",
    })
    await audit.bind(EVENTS, routing_key="#")


async def _declare_consumed_queue(
    channel: AbstractChannel, queue: str, topology: ServiceTopology, *, single_active: bool
) -> aio_pika.abc.AbstractQueue:
    dlq = await channel.declare_queue(
        dead_letter_queue(queue), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(DLX, routing_key=queue)
    args = _quorum_args(queue=queue, delivery_limit=topology.delivery_limit, single_active=single_active)
    return await channel.declare_queue(queue, durable=True, arguments=args)


async def _declare_retry_queue(channel: AbstractChannel, topology: ServiceTopology, delay: int) -> None:
    await channel.declare_queue(
        f"{topology.service}.retry.{delay}s", durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-message-ttl": delay * 1000,
            "x-dead-letter-exchange": COMMANDS,
            "x-dead-letter-routing-key": topology.service,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
