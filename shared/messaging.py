"""Reliable messaging on FastStream: the broker factory, the command consumer and the outbox relay.

A command delivery becomes exactly one reply and at most one state change:
parse -> (invalid: dead-letter with reason, reply `invalid_message`) -> handle with bounded
in-place retries on transient errors -> relay the aggregate's outbox -> reply -> ack.
A crash anywhere before the ack redelivers the command; handlers recognise a command they
already applied (by message_id) and the relay then publishes whatever is still pending.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aio_pika.exceptions import DeliveryError
from faststream.rabbit import RabbitBroker, RabbitExchange
from faststream.rabbit.message import RabbitMessage
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.schemas import Channel
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.trace import TracerProvider
from pydantic import BaseModel, ValidationError

from shared.contracts.base import Accepted, Event, FieldError, Rejected
from shared.mongo import outbox_entry
from shared.topology import ACCOUNT_KEY_HEADER, COMMANDS, DLX, EVENTS, ServiceTopology

log = logging.getLogger(__name__)

SECRET_FIELDS = frozenset({"password", "new_password", "initial_password", "source_password", "actor_token"})
REASON_HEADER = "x-death-reason"
ATTEMPT_HEADER = "x-retry-attempt"

Reply = Accepted | Rejected


def make_broker(
    url: str, *, app_id: str, tracer_provider: TracerProvider | None, prefetch: int = 32
) -> RabbitBroker:
    """Confirms on, unroutable mandatory messages raise, prefetch explicit (FastStream defaults none)."""
    return RabbitBroker(
        url,
        app_id=app_id,
        default_channel=Channel(prefetch_count=prefetch, publisher_confirms=True, on_return_raises=True),
        middlewares=[RabbitTelemetryMiddleware(tracer_provider=tracer_provider)],
        graceful_timeout=30.0,
        fail_fast=False,
        reconnect_interval=1.0,
    )


def redact(body: bytes) -> bytes:
    """A dead-lettered body keeps its shape for operators but loses every secret."""
    try:
        data = json.loads(body)
    except ValueError:
        return b"<not json; body withheld>"
    if not isinstance(data, dict):
        return body
    return json.dumps({k: "[redacted]" if k in SECRET_FIELDS else v for k, v in data.items()}).encode()


def trace_headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def to_outbox(event: Event) -> dict[str, Any]:
    """An event as stored in its aggregate's outbox, with the trace context of the command."""
    return outbox_entry(
        event_id=str(event.message_id), routing_key=event.ROUTING_KEY,
        body=event.model_dump_json(), headers=trace_headers(),
    )


class OutboxStore(Protocol):
    async def pending(self, key: str) -> list[dict[str, Any]]: ...
    async def remove(self, key: str, event_ids: list[str]) -> None:
        """Drop published events; always called once a turn's relay is done."""


@dataclass(frozen=True)
class EventPublisher:
    broker: RabbitBroker

    async def publish_entry(self, entry: dict[str, Any]) -> None:
        token = otel_context.attach(propagate.extract(entry.get("headers", {})))
        try:
            await self.broker.publish(
                entry["body"].encode(), exchange=RabbitExchange(EVENTS, declare=False),
                routing_key=entry["routing_key"], message_id=entry["id"],
                content_type="application/json", persist=True, mandatory=True,
            )
        finally:
            otel_context.detach(token)

    async def publish(self, event: Event) -> None:
        await self.publish_entry(to_outbox(event))


@dataclass(frozen=True)
class OutboxRelay:
    store: OutboxStore
    publisher: EventPublisher

    async def flush(self, key: str) -> None:
        entries = await self.store.pending(key)
        for entry in entries:
            await self.publisher.publish_entry(entry)
        await self.store.remove(key, [entry["id"] for entry in entries])


class RetryLater(Exception):
    """The transient-error budget ran out; park the command in a retry queue."""


@dataclass(frozen=True)
class CommandConsumer:
    """Glue between one FastStream subscriber and a service's `handle(command) -> Reply`."""

    queue: str
    broker: RabbitBroker
    topology: ServiceTopology
    parse: Callable[[bytes], BaseModel]
    handle: Callable[[BaseModel], Awaitable[Reply]]
    relay: OutboxRelay
    transient_errors: tuple[type[BaseException], ...]
    retry_budget_s: float

    async def __call__(self, message: RabbitMessage) -> None:
        raw = message.raw_message
        try:
            command = self.parse(message.body)
        except ValidationError as error:
            await self._refuse_invalid(message, error)
            return
        try:
            await self._handle_patiently(command, message)
        except RetryLater:
            await self._park(message)
            return
        except Exception as error:  # a bug: set the command aside, keep serving
            log.exception("command %s failed", raw.message_id)
            await self._dead_letter(message, reason=f"unhandled {type(error).__name__}")
            await self._reply(message, Rejected(
                command_id=getattr(command, "message_id", None), code="unavailable",
                message="the command could not be processed and was set aside for operators"))
            await message.ack()
            return
        await message.ack()

    async def _handle_patiently(self, command: BaseModel, message: RabbitMessage) -> None:
        """Handle, reply, relay the outbox; the reply goes first as it needs none of the events."""
        loop = asyncio.get_running_loop()
        deadline, pause, replied = loop.time() + self.retry_budget_s, 0.1, False
        while True:
            try:
                if not replied:
                    reply = await self.handle(command)
                    await self._reply(message, reply)
                    replied = True
                if key := command.subject_address():  # type: ignore[attr-defined]
                    await self.relay.flush(key.lower())
                return
            except self.transient_errors as error:
                if loop.time() + pause > deadline:
                    raise RetryLater from error
                log.warning("transient %s; retrying in %.1fs", type(error).__name__, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 3.0)

    async def _refuse_invalid(self, message: RabbitMessage, error: ValidationError) -> None:
        errors = tuple(
            FieldError(field=_field_name(e["loc"]), code=e["type"], message=e["msg"])
            for e in error.errors(include_input=False, include_url=False)
        )
        await self._dead_letter(message, reason="schema: " + "; ".join(f"{e.field}: {e.message}" for e in errors))
        await self._reply(message, Rejected(code="invalid_message", message="the message does not match the contract", errors=errors))
        await message.ack()

    async def _dead_letter(self, message: RabbitMessage, *, reason: str) -> None:
        raw = message.raw_message
        headers = {k: v for k, v in (raw.headers or {}).items() if k != "traceparent"}
        await self.broker.publish(
            redact(message.body), exchange=RabbitExchange(DLX, declare=False),
            routing_key=self.queue,
            headers={**headers, REASON_HEADER: reason[:1000]}, message_id=raw.message_id,
            correlation_id=raw.correlation_id, persist=True, mandatory=True,
        )

    async def _park(self, message: RabbitMessage) -> None:
        raw = message.raw_message
        headers = dict(raw.headers or {})
        attempt = int(headers.get(ATTEMPT_HEADER, 0))
        if attempt >= len(self.topology.retry_delays_s):
            await self._dead_letter(message, reason="transient failures outlasted every retry")
            await self._reply(message, Rejected(code="unavailable", message="a dependency is unavailable; try again later"))
        else:
            await self.broker.publish(
                message.body, routing_key=self.topology.retry_queue(attempt),
                headers={**headers, ATTEMPT_HEADER: attempt + 1}, message_id=raw.message_id,
                correlation_id=raw.correlation_id, reply_to=raw.reply_to, persist=True, mandatory=True,
                content_type=raw.content_type,
            )
        await message.ack()

    async def _reply(self, message: RabbitMessage, reply: Reply) -> None:
        raw = message.raw_message
        if not raw.reply_to:
            return
        try:
            await self.broker.publish(
                reply.model_dump_json().encode(), routing_key=raw.reply_to,
                correlation_id=raw.correlation_id, content_type="application/json",
                mandatory=False, persist=False,
            )
        except DeliveryError:
            log.info("requester of %s is gone; reply dropped", raw.message_id)


def _field_name(loc: tuple[Any, ...]) -> str:
    """Contract fields are snake_case; a leading CamelCase part is the union's command type."""
    if len(loc) > 1 and isinstance(loc[0], str) and loc[0][:1].isupper():
        loc = loc[1:]
    return ".".join(map(str, loc)) or "body"


def command_headers(address: str) -> dict[str, str]:
    """Headers that route a command to its account's shard."""
    return {ACCOUNT_KEY_HEADER: address.lower()}


__all__ = ["COMMANDS", "CommandConsumer", "EventPublisher", "OutboxRelay", "command_headers", "make_broker"]
