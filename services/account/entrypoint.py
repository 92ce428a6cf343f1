"""The account service: FastStream subscribers and the one composition root."""

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

import aio_pika
from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError
from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.schemas import Channel, QueueType
from pydantic import TypeAdapter
from pymongo.errors import ConnectionFailure

from services.account.adapters.argon2_hasher import Argon2Hasher
from services.account.adapters.dovecot_passwd import DovecotPasswdFiles
from services.account.adapters.mongo_accounts import MongoAccounts
from services.account.application.bootstrap import ensure_admin
from services.account.application.handlers import Deps, handle
from services.account.settings import AccountSettings
from shared.auth import TokenIssuer, TokenVerifier, load_private_key, load_public_key
from shared.contracts.account import SERVICE, AccountCommand
from shared.messaging import CommandConsumer, EventPublisher, OutboxRelay, OutboxSweeper, make_broker
from shared.mongo import AggregateDocuments, make_client
from shared.telemetry import make_tracer_provider
from shared.topology import ServiceTopology, declare

# A dependency away (database, broker, reconnecting channel); not a bad file system or a bug.
TRANSIENT_ERRORS = (ConnectionFailure, ConnectionError, TimeoutError, AMQPConnectionError, ChannelInvalidStateError)


def topology_of(settings: AccountSettings) -> ServiceTopology:
    return ServiceTopology(service=SERVICE, shards=settings.command_shards, delivery_limit=settings.delivery_limit)


def create_app(settings: AccountSettings | None = None) -> FastStream:
    settings = settings or AccountSettings()  # type: ignore[call-arg]
    broker = make_broker(settings.amqp_url.get_secret_value(), app_id=SERVICE,
                         tracer_provider=make_tracer_provider(SERVICE, settings))
    mongo = make_client(settings.mongodb_url.get_secret_value())
    accounts = MongoAccounts(AggregateDocuments(mongo[settings.mongodb_db]["accounts"]))
    publisher = EventPublisher(broker)
    deps = build_deps(settings, accounts=accounts, audit=publisher)
    relay = OutboxRelay(accounts, publisher)
    parse = TypeAdapter(AccountCommand).validate_json
    for queue in topology_of(settings).shard_queues():
        _subscribe(broker, queue, CommandConsumer(
            queue=queue, broker=broker, parse=parse, handle=partial(handle, deps=deps), relay=relay,
            transient_errors=TRANSIENT_ERRORS, delivery_limit=settings.delivery_limit,
        ))

    sweeper = OutboxSweeper(broker=broker, service=SERVICE, stale_keys=accounts.stale_keys,
                            interval_s=settings.outbox_sweep_interval_s, stale_after_s=settings.outbox_stale_after_s)
    background: list[asyncio.Task] = []

    async def prepare() -> None:
        await declare_topology(settings)
        await bootstrap_admin(settings, accounts, deps)

    async def start_sweeping() -> None:
        background.append(asyncio.create_task(sweeper.run()))

    async def close() -> None:
        for task in background:
            task.cancel()
        await mongo.close()

    return FastStream(broker, on_startup=[prepare], after_startup=[start_sweeping], after_shutdown=[close])


def build_deps(settings: AccountSettings, *, accounts: MongoAccounts, audit: EventPublisher) -> Deps:
    hasher = Argon2Hasher(settings.argon2)
    return Deps(
        accounts=accounts, admins=accounts, hasher=hasher, audit=audit,
        mail_logins=DovecotPasswdFiles(settings.dovecot_passwd_dir),
        issuer=TokenIssuer(load_private_key(settings.session_private_key.get_secret_value()),
                           timedelta(minutes=settings.session_lifetime_minutes)),
        verifier=TokenVerifier(load_public_key(settings.session_public_key)),
        clock=partial(datetime.now, UTC), lockout=settings.lockout,
        dummy_hash=hasher.hash_now("dummy password never used"),
    )


async def declare_topology(settings: AccountSettings) -> None:
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        await declare(await connection.channel(), topology_of(settings))


async def bootstrap_admin(settings: AccountSettings, accounts: MongoAccounts, deps: Deps) -> None:
    login, password = settings.bootstrap_admin_login, settings.bootstrap_admin_password
    if login and password:
        domains = frozenset(d.lower() for d in settings.bootstrap_admin_domains)
        await ensure_admin(login, password.get_secret_value(), domains, accounts=accounts, hasher=deps.hasher,
                           now=deps.clock())
        accounts.forget(login)


async def raw_body(message: RabbitMessage) -> bytes:
    """Decoding is ours (CommandConsumer): FastStream must not fail on a body that is not JSON."""
    return message.body


def _subscribe(broker, queue: str, consumer: CommandConsumer) -> None:
    # prefetch 1 on a single-active-consumer shard: strictly one command of a shard at a time
    @broker.subscriber(
        RabbitQueue(queue, queue_type=QueueType.QUORUM, declare=False),
        channel=Channel(prefetch_count=1, on_return_raises=True),
        ack_policy=AckPolicy.MANUAL, no_reply=True, decoder=raw_body,
    )
    async def on_command(message: RabbitMessage) -> None:
        await consumer(message)
