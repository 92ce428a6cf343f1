"""Exchanges and queues, declared once from one table per service.

Declared by the operator (shared/broker_access.py, with the broker's admin user), because no
service may read from `commands` or declare what others use:
commands (direct) --<service>--> <service>.commands (consistent hash on header x-account)
events (topic) --#--> events.audit
Declared by each service itself (its broker user configures only `<service>.*`):
<service>.internal (direct) --<service>--> <service>.commands       (internal commands: events, sweeper, start-up)
    <service>.commands --> <service>.commands.<n>  quorum, single active consumer: one account is
        handled by one consumer at a time, in order, while different accounts spread over shards.
<service>.internal --work.<name>--> <service>.work.<name>   quorum, competing consumers
events (topic) --<keys the service reacts to>--> <service>.events   quorum, competing consumers
`events.audit` keeps every event for operators.
Every consumed queue dead-letters to its service's `<service>.dlx` under its own name into
`<queue>.dlq` (one exchange per service: reading another's dead letters needs no binding). There are no TTL
retry queues: a message parked there would let the account's later commands overtake it, so
transient failures are retried in place (shared/messaging), holding the shard in order.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, ExchangeType

COMMANDS = "commands"
EVENTS = "events"
ACCOUNT_KEY_HEADER = "x-account"
AUDIT_QUEUE = "events.audit"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
"""the only place replies go: a reply_to naming any other queue is not honoured"""
AUDIT_MAX_LENGTH = 1_000_000
SHARED_EXCHANGES: Mapping[str, ExchangeType] = {
    COMMANDS: ExchangeType.DIRECT,
    EVENTS: ExchangeType.TOPIC,
}


def internal_exchange(service: str) -> str:
    return f"{service}.internal"


def work_routing_key(name: str) -> str:
    return f"work.{name}"


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def dead_letter_exchange(service: str) -> str:
    return f"{service}.dlx"


def shard_exchange(service: str) -> str:
    return f"{service}.commands"


def service_of(queue: str) -> str:
    """Every queue of a service is named `<service>.…`."""
    return queue.partition(".")[0]


@dataclass(frozen=True)
class ServiceTopology:
    service: str
    shards: int
    delivery_limit: int
    event_keys: tuple[str, ...] = ()
    """routing keys of the events the service reacts to"""
    work: tuple[str, ...] = ()
    """names of the service's work queues"""

    @property
    def shard_exchange(self) -> str:
        return shard_exchange(self.service)

    @property
    def internal_exchange(self) -> str:
        return internal_exchange(self.service)

    @property
    def event_queue(self) -> str | None:
        return f"{self.service}.events" if self.event_keys else None

    def shard_queues(self) -> tuple[str, ...]:
        return tuple(f"{self.service}.commands.{n}" for n in range(self.shards))

    def work_queue(self, name: str) -> str:
        return f"{self.service}.work.{name}"

    def consumed_queues(self) -> tuple[str, ...]:
        events = (self.event_queue,) if self.event_queue else ()
        return (*self.shard_queues(), *events, *(self.work_queue(name) for name in self.work))


def _quorum_args(*, queue: str, delivery_limit: int, single_active: bool) -> dict[str, Any]:
    """Lengths are not here but in the operator's policies (broker_access.POLICIES): they can change
    without redeclaring a queue."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-single-active-consumer": single_active,
        "x-dead-letter-exchange": dead_letter_exchange(service_of(queue)),
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare_shared(channel: AbstractChannel, services: Iterable[str]) -> None:
    """The operator's part: the exchanges every service uses, the audit queue, and each service's
    way in from `commands` (a binding from `commands` would let its maker read any service's commands)."""
    for name, kind in SHARED_EXCHANGES.items():
        await channel.declare_exchange(name, kind, durable=True)
    await _declare_audit_queue(channel)
    for service in services:
        exchange = await _declare_shard_exchange(channel, service)
        await exchange.bind(COMMANDS, routing_key=service)


async def declare(channel: AbstractChannel, topology: ServiceTopology) -> None:
    """The service's own part (see declare_shared for the operator's)."""
    await channel.declare_exchange(dead_letter_exchange(topology.service), ExchangeType.DIRECT, durable=True)
    await _declare_shards(channel, topology)
    internal = await channel.declare_exchange(topology.internal_exchange, ExchangeType.DIRECT, durable=True)
    for name in topology.work:
        queue = await _declare_consumed_queue(channel, topology.work_queue(name), topology, single_active=False)
        await queue.bind(internal, routing_key=work_routing_key(name))
    if topology.event_queue:
        queue = await _declare_consumed_queue(channel, topology.event_queue, topology, single_active=False)
        for key in topology.event_keys:
            await queue.bind(EVENTS, routing_key=key)


async def _declare_shard_exchange(channel: AbstractChannel, service: str) -> aio_pika.abc.AbstractExchange:
    return await channel.declare_exchange(shard_exchange(service), "x-consistent-hash", durable=True,
                                          arguments={"hash-header": ACCOUNT_KEY_HEADER})


async def _declare_shards(channel: AbstractChannel, topology: ServiceTopology) -> None:
    shards = await _declare_shard_exchange(channel, topology.service)
    internal = await channel.declare_exchange(topology.internal_exchange, ExchangeType.DIRECT, durable=True)
    await shards.bind(internal, routing_key=topology.service)
    for queue in topology.shard_queues():
        declared = await _declare_consumed_queue(channel, queue, topology, single_active=True)
        await declared.bind(topology.shard_exchange, routing_key="1")


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
    await dlq.bind(dead_letter_exchange(topology.service), routing_key=queue)
    args = _quorum_args(queue=queue, delivery_limit=topology.delivery_limit, single_active=single_active)
    return await channel.declare_queue(queue, durable=True, arguments=args)
