"""The broker factory, publishing helpers and subscribing as every kit consumer does."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika.exceptions import ChannelInvalidStateError
from aiormq.exceptions import AMQPConnectionError
from aiormq.exceptions import ChannelInvalidStateError as AiormqChannelInvalidStateError
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage as Delivered
from faststream.rabbit.message import RabbitMessage
from faststream.rabbit.schemas import Channel, QueueType
from faststream.rabbit.subscriber.usecase import RabbitSubscriber
from opentelemetry.trace import SpanKind
from pymongo.errors import ConnectionFailure
from yarl import URL

from shared.telemetry import attributes_of, span, trace_headers
from shared.topology import ACCOUNT_KEY_HEADER, EVENTS, internal_exchange

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionFailure, ConnectionError, TimeoutError, AMQPConnectionError, AiormqChannelInvalidStateError,
    ChannelInvalidStateError,
)
"""A dependency away (database, broker, reconnecting channel); not a bad file system or a bug."""


def make_broker(
    url: str, *, app_id: str, connection_name: str, prefetch: int = 32, on_close: Callable[..., Any] | None = None,
) -> RabbitBroker:
    """Confirms on, unroutable mandatory messages raise, prefetch explicit (FastStream defaults none).
    No FastStream telemetry middleware: the kit opens one span per message itself, named after the
    message (shared/telemetry.py), and publishes with the current span's context."""
    return RabbitBroker(
        str(URL(url).update_query(name=connection_name)),  # aiormq names the connection after `name`
        on_close=[on_close] if on_close else None,
        app_id=app_id,
        default_channel=Channel(prefetch_count=prefetch, publisher_confirms=True, on_return_raises=True),
        graceful_timeout=30.0,
        log_level=logging.DEBUG,  # "Received"/"Processed" per message: traces say that, logs stay for problems
        fail_fast=False,
        reconnect_interval=1.0,
    )


async def publish(
    broker: RabbitBroker, body: bytes, *, exchange: str, routing_key: str, message_id: str,
    key: str | None = None, headers: dict[str, Any] | None = None, correlation_id: str | None = None,
    user_id: str | None = None, traced: bool = True,
) -> None:
    """Persistent, mandatory, confirmed: once this returns, the broker has the message queued. `traced`:
    with the current span's context, so its consumer's span joins the trace."""
    all_headers = {**(trace_headers() if traced else {}), **(headers or {}),
                   **({ACCOUNT_KEY_HEADER: key} if key is not None else {})}
    await broker.publish(
        body, exchange=RabbitExchange(exchange, declare=False), routing_key=routing_key, message_id=message_id,
        correlation_id=correlation_id, headers=all_headers, content_type="application/json",
        persist=True, mandatory=True, user_id=user_id,
    )


async def send_internal(broker: RabbitBroker, service: str, command: Any) -> None:
    """An internal command of `service` to the shard of its aggregate, on the service's own exchange."""
    await publish(broker, command.model_dump_json().encode(), exchange=internal_exchange(service),
                  routing_key=service, key=command.subject_key(), message_id=str(command.message_id))


async def raw_body(message: RabbitMessage) -> bytes:
    """Decoding is the kit's: FastStream must not fail on a body that is not JSON."""
    return message.body


def subscribe(broker: RabbitBroker, queue: str, *, prefetch: int,
              consume: Callable[[RabbitMessage], Awaitable[None]]) -> RabbitSubscriber:
    """A manual-ack subscriber on a quorum queue the kit declared itself."""
    subscriber = broker.subscriber(
        RabbitQueue(queue, queue_type=QueueType.QUORUM, declare=False),
        channel=Channel(prefetch_count=prefetch, on_return_raises=True),
        ack_policy=AckPolicy.MANUAL, no_reply=True, decoder=raw_body,
    )

    @subscriber
    async def on_message(message: Delivered) -> None:
        await consume(message)

    return subscriber


def is_consuming(subscriber: RabbitSubscriber) -> bool:
    """The subscriber holds a consumer on an open channel (FastStream keeps both privately)."""
    queue, tag = getattr(subscriber, "_queue_obj", None), getattr(subscriber, "_consumer_tag", None)
    try:
        return queue is not None and tag is not None and not queue.channel.is_closed
    except Exception:  # aio-pika raises on a channel that is gone
        return False


class EventPublisher:
    """Publishes an event that belongs to no stored aggregate (e.g. a sign-in to an unknown login), naming
    its publisher as the outbox does (`user_id`)."""

    def __init__(self, broker: RabbitBroker, user_id: str | None = None) -> None:
        self._broker, self._user_id = broker, user_id

    async def publish(self, event: Any) -> None:
        with span(type(event).__name__, kind=SpanKind.PRODUCER, attributes=attributes_of(event)):
            await publish(self._broker, event.model_dump_json().encode(), exchange=EVENTS,
                          routing_key=event.ROUTING_KEY, message_id=str(event.message_id), user_id=self._user_id)


def broker_user(amqp_url: str) -> str | None:
    """The broker user an AMQP URL logs in as: what RabbitMQ lets its messages name as `user_id`."""
    return URL(amqp_url).user or None
