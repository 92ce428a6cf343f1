"""`run_service(spec)`: a service is its name, settings class, contracts and a composition root
that returns its handler table, unit-of-work collection, reactions to events, work handlers and
start-up commands. The kit builds the broker, database, telemetry, topology and every consumer.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial, reduce
from operator import or_
from typing import Annotated, Any

import aio_pika
from faststream import FastStream
from faststream.rabbit import RabbitBroker
from faststream.rabbit.subscriber.usecase import RabbitSubscriber
from pydantic import Field, TypeAdapter
from pymongo.asynchronous.database import AsyncDatabase

from shared.auth import TokenVerifier, load_public_key
from shared.contracts.base import Event, FlushOutbox, InternalCommand, Keyed, WorkItem
from shared.health import HealthReporter, report_path
from shared.messaging.broker import TRANSIENT_ERRORS, EventPublisher, broker_user, make_broker, send_internal, subscribe
from shared.messaging.commands import CommandConsumer, Follow, Handler, StartNow
from shared.messaging.events import EventConsumer, Reaction, event_parser
from shared.messaging.leases import LEASES, WorkLeases, new_holder
from shared.messaging.outbox import OutboxRelay, OutboxSweeper
from shared.messaging.redaction import Redactor
from shared.messaging.unit_of_work import AggregateReader, ShardAggregates, UnitOfWork
from shared.messaging.work import WorkConsumer, WorkHandler
from shared.mongo import enforces_write_guards, make_client
from shared.sessions import COLLECTION as SESSIONS_COLLECTION
from shared.sessions import REACTIONS as SESSION_REACTIONS
from shared.sessions import EndedSessions, LimitSessions, RevokeSession, SessionGuard, SessionLimits
from shared.settings import ServiceSettings
from shared.telemetry import make_tracer_provider
from shared.topology import ServiceTopology, declare

log = logging.getLogger(__name__)

LEASE_CLEAN_UP_S = 3600.0


@dataclass(frozen=True)
class Resources:
    """What the kit builds once per process and offers the composition root."""

    settings: Any
    broker: RabbitBroker
    database: AsyncDatabase[dict[str, Any]]
    sessions: SessionGuard
    service: str

    def events(self) -> EventPublisher:
        """Publishes events that belong to no aggregate, as this service (its broker user)."""
        return EventPublisher(self.broker, broker_user(self.settings.amqp_url.get_secret_value()))

    async def send(self, command: InternalCommand) -> None:
        """An internal command to its aggregate's shard (from a follow, a worker, a reconciler)."""
        await send_internal(self.broker, self.service, command)

    async def send_all(self, commands: Iterable[InternalCommand]) -> None:
        for command in commands:
            await self.send(command)


def over_unit(port: Callable[[UnitOfWork], Any], handler: Callable[[Any, Any], Awaitable[Any]]) -> Handler:
    """A kit handler from a service handler that takes the command and its own port, built over the
    delivery's unit of work by `port` (e.g. a store of the service's aggregates)."""
    async def handle(command: Any, unit: UnitOfWork) -> Any:
        return await handler(command, port(unit))
    return handle


def over_units(port: Callable[[UnitOfWork], Any], table: Mapping[type, Callable[..., Awaitable[Any]]],
               **bound: Any) -> dict[type, Handler]:
    """`over_unit` for a service's table of handlers (command type -> handler), each called with
    `bound` (e.g. its deps) as keyword arguments too."""
    return {kind: over_unit(port, partial(handler, **bound) if bound else handler) for kind, handler in table.items()}


@dataclass(frozen=True)
class Sweep:
    """Periodic work that belongs to aggregates: every `interval_s` the kit asks `due()` for internal
    commands and sends each through its aggregate's shard, where it is decided in turn."""

    interval_s: float
    due: Callable[[], Awaitable[Iterable[InternalCommand]]]
    first_after_s: float | None = None
    """the first round (default: after one interval); e.g. soon after start for a reconciliation"""

    async def run(self, broker: RabbitBroker, service: str) -> None:
        pause = self.interval_s if self.first_after_s is None else self.first_after_s
        while True:
            await asyncio.sleep(pause)
            pause = self.interval_s
            try:
                for command in await self.due():
                    await send_internal(broker, service, command)
            except TRANSIENT_ERRORS as error:  # the next round tries again
                log.warning("sweep postponed: %s", type(error).__name__)
            except Exception:
                log.exception("sweep failed")


@dataclass(frozen=True)
class Wiring:
    """What a service's composition root hands back to the kit."""

    handlers: Mapping[type, Handler]
    aggregates: str
    """the collection of the service's aggregates: its unit-of-work store"""
    follow: Follow | None = None
    reactions: Mapping[type[Event], Reaction] = field(default_factory=dict)
    work: Mapping[type[WorkItem], WorkHandler] = field(default_factory=dict)
    startup: Sequence[InternalCommand] = ()
    """sent through the owning shards before the service consumes (e.g. the first admin)"""
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    """long-running work beside the shards (e.g. reconcilers), started once the service consumes"""
    sweeps: Sequence[Sweep] = ()
    on_close: Sequence[Callable[[], Awaitable[None]]] = ()
    """what the service closes when it stops (clients, kept connections), all at once"""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    settings: type[ServiceSettings]
    commands: tuple[type[Keyed], ...]
    """every command the service handles: its clients' and its internal ones"""
    compose: Callable[[Any, Resources], Wiring]
    keeps_sessions: bool = True
    """keep the sessions projection (the account service owns the truth and needs none)"""


def connection_name(service: str, instance: str) -> str:
    return f"{service}@{instance}"


def command_parser(kinds: Sequence[type[Keyed]]) -> Callable[[bytes], Keyed]:
    union: Any = reduce(or_, kinds)
    adapter: TypeAdapter[Keyed] = TypeAdapter(Annotated[union, Field(discriminator="type")])
    return adapter.validate_json


def topology_of(spec: ServiceSpec, settings: ServiceSettings, wiring: Wiring) -> ServiceTopology:
    return ServiceTopology(
        service=spec.name, shards=settings.command_shards, delivery_limit=settings.delivery_limit,
        event_keys=tuple(sorted({kind.ROUTING_KEY for kind in _reactions(spec, wiring)})),
        work=tuple(kind.QUEUE for kind in wiring.work),
    )


def _reactions(spec: ServiceSpec, wiring: Wiring) -> Mapping[type[Event], Reaction]:
    return {**(SESSION_REACTIONS if spec.keeps_sessions else {}), **wiring.reactions}


def create_app(spec: ServiceSpec, settings: ServiceSettings | None = None) -> FastStream:
    settings = settings or spec.settings()
    make_tracer_provider(spec.name, settings)
    health_path = report_path(settings.health_dir, spec.name, settings.instance)
    broker = make_broker(settings.amqp_url.get_secret_value(), app_id=spec.name,
                         connection_name=connection_name(spec.name, settings.instance),
                         on_close=lambda *_: reporter.connection_closed())
    mongo = make_client(settings.mongodb_url.get_secret_value())
    database = mongo[settings.mongodb_db]
    reporter = HealthReporter(health_path, broker, database)
    limits, ended = SessionLimits(database[SESSIONS_COLLECTION]), EndedSessions(database)
    sessions = SessionGuard(TokenVerifier(load_public_key(settings.session_public_key)), limits, ended)
    wiring = spec.compose(settings, Resources(settings, broker, database, sessions, spec.name))
    topology = topology_of(spec, settings, wiring)
    shards = {queue: ShardAggregates(database[wiring.aggregates], service=spec.name) for queue in topology.shard_queues()}
    leases = WorkLeases(database[LEASES], new_holder(settings.instance), settings.work_lease_s)
    reporter.subscribers.update(_subscribe_all(spec, settings, broker, shards, wiring, topology, sessions, leases))
    sweeper = OutboxSweeper(broker=broker, service=spec.name,
                            stale_keys=AggregateReader(database[wiring.aggregates]).stale_keys,
                            interval_s=settings.outbox_sweep_interval_s, stale_after_s=settings.outbox_stale_after_s)
    background: list[asyncio.Task[None]] = []

    async def prepare() -> None:
        guarded = await enforces_write_guards(mongo)
        for shard in shards.values():
            shard.guarded = guarded
        log.info("version guard on aggregate writes: %s", "on" if guarded else "off (FerretDB)")
        await _declare_and_send(settings, topology, wiring.startup)

    async def start_background() -> None:
        background.extend([asyncio.create_task(sweeper.run()), asyncio.create_task(reporter.run()),
                           *(asyncio.create_task(run()) for run in wiring.background),
                           *(asyncio.create_task(sweep.run(broker, spec.name)) for sweep in wiring.sweeps)])
        if any(not kind.OVERLAP_SAFE for kind in wiring.work):
            background.append(asyncio.create_task(leases.clean_up_every(LEASE_CLEAN_UP_S)))
        if spec.keeps_sessions:
            background.append(asyncio.create_task(ended.sweep_every(settings.ended_sessions_sweep_interval_s)))

    async def close() -> None:
        for task in background:
            task.cancel()
        reporter.remove()
        await asyncio.gather(*(close_one() for close_one in wiring.on_close))
        await mongo.close()

    return FastStream(broker, on_startup=[prepare], after_startup=[start_background], after_shutdown=[close])


def _subscribe_all(spec: ServiceSpec, settings: ServiceSettings, broker: RabbitBroker, shards: Mapping[str, ShardAggregates],
                   wiring: Wiring, topology: ServiceTopology, sessions: SessionGuard,
                   leases: WorkLeases) -> dict[str, RabbitSubscriber]:
    """Every consumer of the service, by queue."""
    subscribers = {}
    handlers: dict[type, Handler] = {**wiring.handlers}
    if spec.keeps_sessions:
        handlers[LimitSessions], handlers[RevokeSession] = sessions.limits.record, sessions.ended.record
    kinds = (*spec.commands, FlushOutbox, *((LimitSessions, RevokeSession) if spec.keeps_sessions else ()))
    parse, relay = command_parser(kinds), OutboxRelay(user_id=broker_user(settings.amqp_url.get_secret_value()))
    redact = Redactor.for_messages((*kinds, *_reactions(spec, wiring), *wiring.work))
    workers = _work_consumers(settings, broker, wiring, topology, leases, redact)
    start_now = _early_starter(workers)
    for queue in topology.shard_queues():
        consumer = CommandConsumer(
            queue=queue, broker=broker, internal_exchange=topology.internal_exchange, parse=parse,
            handlers=handlers, aggregates=shards[queue],
            relay=relay, transient_errors=TRANSIENT_ERRORS, delivery_limit=settings.delivery_limit,
            redact=redact, follow=wiring.follow,
            start_now=start_now,
        )
        subscribers[queue] = subscribe(broker, queue, prefetch=1, consume=consumer)  # one command of a shard at a time
    if topology.event_queue:
        reactions = _reactions(spec, wiring)
        subscribers[topology.event_queue] = subscribe(broker, topology.event_queue, prefetch=settings.event_prefetch, consume=EventConsumer(
            queue=topology.event_queue, broker=broker, service=spec.name,
            parse=event_parser(reactions), reactions=reactions,
            transient_errors=TRANSIENT_ERRORS, delivery_limit=settings.delivery_limit, redact=redact,
        ))
    for worker in workers.values():
        if worker.queue in subscribers:
            raise ValueError(f"{worker.item_type.__name__} shares the work queue {worker.queue!r}: one work item type per queue")
        subscribers[worker.queue] = subscribe(broker, worker.queue, prefetch=worker.concurrency, consume=worker)
    return subscribers


def _early_starter(workers: Mapping[type[WorkItem], WorkConsumer]) -> StartNow | None:
    eager = {kind: worker for kind, worker in workers.items() if kind.EAGER}

    def start_now(item: WorkItem) -> None:
        if (worker := eager.get(type(item))) is not None:
            worker.start_now(item)

    return start_now if eager else None


def _work_consumers(settings: ServiceSettings, broker: RabbitBroker, wiring: Wiring, topology: ServiceTopology,
                    leases: WorkLeases, redact: Redactor) -> dict[type[WorkItem], WorkConsumer]:
    workers = {}
    for kind, handle in wiring.work.items():
        if kind.EAGER and not kind.OVERLAP_SAFE:
            raise ValueError(f"{kind.__name__} is EAGER but not OVERLAP_SAFE: its early run would skip the lease")
        workers[kind] = WorkConsumer(
            queue=topology.work_queue(kind.QUEUE), broker=broker, item_type=kind, handle=handle,
            transient_errors=TRANSIENT_ERRORS, delivery_limit=settings.delivery_limit, redact=redact,
            leases=leases, concurrency=kind.CONCURRENCY or settings.work_prefetch,
        )
    return workers


async def _declare_and_send(settings: ServiceSettings, topology: ServiceTopology,
                            startup: Sequence[InternalCommand]) -> None:
    """Before consuming: the topology, then the start-up commands, queued ahead of any client's."""
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare(channel, topology)
        exchange = await channel.get_exchange(topology.internal_exchange, ensure=False)
        for command in startup:
            await exchange.publish(aio_pika.Message(
                command.model_dump_json().encode(), content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=str(command.message_id),
                headers={"x-account": command.subject_key()},
            ), routing_key=topology.service, mandatory=True)


def run_service(spec: ServiceSpec) -> None:
    """The `python -m services.<name>` entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(create_app(spec).run(logging.INFO))
