"""Reliable messaging on FastStream: the broker factory, the command consumer and the outbox relay.

A command delivery becomes exactly one reply and at most one state change:
parse -> (invalid: set aside with the reason, reply `invalid_message`) -> handle and reply ->
relay the aggregate's outbox -> ack. Transient failures (database or broker away) are retried
in place with capped backoff, which holds the account's shard and so keeps its order; a crash
anywhere before the ack redelivers the command, handlers recognise what they already applied
(by message_id), and the relay publishes whatever is still pending.
"""

import asyncio
import json
import logging
from contextlib import suppress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aio_pika.exceptions import ChannelInvalidStateError, DeliveryError
from faststream.rabbit import RabbitBroker, RabbitExchange
from faststream.rabbit.message import RabbitMessage
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.schemas import Channel
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.trace import TracerProvider
from pydantic import ValidationError

from shared.contracts.base import AnonymousCommand, Command, Event, FieldError, FlushOutbox, Rejected, Reply
from shared.outbox import Entry, OutboxStore, to_outbox
from shared.topology import ACCOUNT_KEY_HEADER, COMMANDS, DLX, EVENTS

log = logging.getLogger(__name__)

SECRET_WORDS = ("password", "token", "secret")
REASON_HEADER = "x-death-reason"
MAX_PAUSE_S = 5.0

UNAVAILABLE = Rejected(code="unavailable", message="the command could not be processed and was set aside for operators")
AnyCommand = Command | AnonymousCommand


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
    """A set-aside body keeps its shape for operators but loses every secret, however deep."""
    try:
        return json.dumps(_redacted(json.loads(body))).encode()
    except (ValueError, RecursionError):
        return b"<not json; body withheld>"


def _secret_name(key: str) -> bool:
    """Any spelling a sender might use: newPassword, actor-token, Client_Secret..."""
    folded = key.lower().replace("_", "").replace("-", "")
    return any(word in folded for word in SECRET_WORDS)


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "[redacted]" if _secret_name(k) else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


@dataclass(frozen=True)
class EventPublisher:
    broker: RabbitBroker

    async def publish_entry(self, entry: Entry) -> None:
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


@dataclass
class _Turn:
    """What one delivery has done so far."""

    key: str | None = None
    reply: Reply | None = None
    answered: bool = False


@dataclass
class OutboxSweeper:
    """Finds outboxes left behind (a relay that failed for good) and asks the owning shard to
    relay them, so the one writer of each aggregate stays the only writer. A key that stays
    stuck is asked again less and less often (doubling, up to an hour)."""

    broker: RabbitBroker
    service: str
    stale_keys: Callable[..., Awaitable[list[str]]]
    interval_s: float
    stale_after_s: float
    _next_try: dict[str, tuple[float, float]] = field(default_factory=dict)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep()
            except Exception:  # the next round tries again; sweeping must never stop the service
                log.exception("outbox sweep failed")

    async def sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        stale = await self.stale_keys(older_than=timedelta(seconds=self.stale_after_s))
        self._next_try = {key: self._next_try[key] for key in stale if key in self._next_try}
        for key in stale:
            due, wait = self._next_try.get(key, (now, self.stale_after_s))
            if due <= now:
                await self._ask_to_flush(key)
                self._next_try[key] = (now + wait, min(wait * 2, 3600.0))

    async def _ask_to_flush(self, key: str) -> None:
        command = FlushOutbox(key=key)
        await self.broker.publish(
            command.model_dump_json().encode(), exchange=RabbitExchange(COMMANDS, declare=False),
            routing_key=self.service, headers={ACCOUNT_KEY_HEADER: command.subject_key()},
            message_id=str(command.message_id), content_type="application/json", persist=True, mandatory=True,
        )


class DeliveryLost(Exception):
    """The channel that delivered the message closed; the broker redelivers it, so stop here."""


def _alive(message: RabbitMessage) -> bool:
    try:
        message.raw_message.channel  # aio-pika raises once the delivering channel is closed
    except ChannelInvalidStateError:
        return False
    return True


class SetAside(Exception):
    """The delivery cannot be processed: answer `reply`, move it to the dead-letter queue with `reason`."""

    def __init__(self, reason: str, reply: Rejected | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply = reply or Rejected(code="invalid_message", message=f"set aside for operators: {reason}")


@dataclass(frozen=True)
class CommandConsumer:
    """Glue between one FastStream subscriber and a service's `handle(command) -> Reply`."""

    queue: str
    broker: RabbitBroker
    parse: Callable[[bytes], AnyCommand]
    handle: Callable[[AnyCommand], Awaitable[Reply]]
    relay: OutboxRelay
    transient_errors: tuple[type[BaseException], ...]
    delivery_limit: int

    async def __call__(self, message: RabbitMessage) -> None:
        turn = _Turn()
        try:
            await self._consume(message, turn)
        except DeliveryLost:
            log.warning("channel of %s closed; the broker redelivers it", message.raw_message.message_id)
        except Exception:  # settling itself failed: give the message back rather than hold the shard
            log.exception("could not settle %s; returning it to the queue", message.raw_message.message_id)
            with suppress(Exception):
                await message.nack(requeue=True)
        finally:
            if turn.key:
                self.relay.store.forget(turn.key)

    async def _consume(self, message: RabbitMessage, turn: "_Turn") -> None:
        try:
            await self._process(message, turn)
        except SetAside as aside:
            await self._answer_once(message, aside.reply, turn)
            await self._set_aside(message, aside.reason)

    async def _process(self, message: RabbitMessage, turn: "_Turn") -> None:
        try:
            command = self._admit(message)
            turn.key = command.subject_key()
            await self._patiently(message, lambda: self._answer(message, command, turn))
            await self._patiently(message, lambda: self.relay.flush(turn.key))
            await self._ack(message)
        except (SetAside, DeliveryLost):
            raise
        except Exception as error:  # a bug: answer, set the command aside, keep serving
            log.exception("command %s failed", message.raw_message.message_id)
            raise SetAside(f"unhandled {type(error).__name__}", UNAVAILABLE) from error

    def _admit(self, message: RabbitMessage) -> AnyCommand:
        raw = message.raw_message
        if int((raw.headers or {}).get("x-delivery-count", 0)) >= self.delivery_limit - 1:
            raise SetAside("delivered too often without an answer (a crash loop?)", UNAVAILABLE)
        try:
            command = self.parse(message.body)
        except ValidationError as error:
            invalid = _invalid(error)
            raise SetAside("schema: " + "; ".join(f"{e.field}: {e.message}" for e in invalid.errors), invalid) from None
        if (raw.headers or {}).get(ACCOUNT_KEY_HEADER) != command.subject_key():
            raise SetAside(f"header {ACCOUNT_KEY_HEADER} does not match the command's account")
        return command

    async def _answer(self, message: RabbitMessage, command: AnyCommand, turn: "_Turn") -> None:
        """Handle once, however often the reply has to be retried."""
        if turn.reply is None:
            turn.reply = await self.handle(command)
        if not turn.answered:
            await self._reply(message, turn.reply)
            turn.answered = True

    async def _answer_once(self, message: RabbitMessage, reply: Reply, turn: "_Turn") -> None:
        if not turn.answered:
            await self._patiently(message, lambda: self._reply(message, reply))
            turn.answered = True

    async def _patiently(self, message: RabbitMessage, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` until it passes; transient errors wait with capped backoff and hold the shard,
        until the delivery's channel is gone (then the broker hands the message to a live consumer)."""
        pause = 0.1
        while True:
            try:
                return await step()
            except self.transient_errors as error:
                if not _alive(message):
                    raise DeliveryLost from error
                log.warning("transient %s; retrying in %.1fs", type(error).__name__, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE_S)

    async def _ack(self, message: RabbitMessage) -> None:
        if not _alive(message):
            raise DeliveryLost
        await message.ack()

    async def _set_aside(self, message: RabbitMessage, reason: str) -> None:
        raw = message.raw_message
        headers = {k: v for k, v in (raw.headers or {}).items() if k != "traceparent"}
        await self._patiently(message, lambda: self.broker.publish(
            redact(message.body), exchange=RabbitExchange(DLX, declare=False), routing_key=self.queue,
            headers={**headers, REASON_HEADER: reason[:1000]}, message_id=raw.message_id,
            correlation_id=raw.correlation_id, persist=True, mandatory=True,
        ))
        await self._ack(message)

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


def _invalid(error: ValidationError) -> Rejected:
    errors = tuple(
        FieldError(field=_field_name(e["loc"]), code=e["type"], message=e["msg"])
        for e in error.errors(include_input=False, include_url=False)
    )
    return Rejected(code="invalid_message", message="the message does not match the contract", errors=errors)


def _field_name(loc: tuple[Any, ...]) -> str:
    """Contract fields are snake_case; a leading CamelCase part is the union's command type."""
    if len(loc) > 1 and isinstance(loc[0], str) and loc[0][:1].isupper():
        loc = loc[1:]
    return ".".join(map(str, loc)) or "body"
