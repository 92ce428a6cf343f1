"""What every kit consumer does with one delivery: retry transient failures in place, set aside
what cannot be processed (redacted, with the reason), and settle exactly once."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from aio_pika.exceptions import ChannelInvalidStateError
from aiormq.exceptions import ChannelInvalidStateError as AiormqChannelInvalidStateError
from aiormq.exceptions import DeliveryError
from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from shared.contracts.base import FIELD_CODES, FIELD_PARAMS, Rejected, SharedFieldCode, SharedFieldError, SharedRejected
from shared.messaging.broker import publish
from shared.messaging.redaction import MAX_BODY_BYTES, Redactor
from shared.telemetry import context_of, span
from shared.topology import COMMANDS, dead_letter_exchange, dead_letter_queue, service_of

log = logging.getLogger(__name__)

REASON_HEADER = "x-death-reason"
MAX_PAUSE_S = 5.0
MAX_FULL_PAUSE_S = 10.0
T = TypeVar("T")


class DeliveryLost(Exception):
    """The channel that delivered the message closed; the broker redelivers it, so stop here."""


class SetAside(Exception):
    """The delivery cannot be processed: answer `reply`, move it to the dead-letter queue with `reason`."""

    def __init__(self, reason: str, reply: Rejected | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply = reply or SharedRejected(code="invalid_message", message=f"set aside for operators: {reason}")


def alive(message: RabbitMessage) -> bool:
    try:
        channel_of(message)
    except DeliveryLost:
        return False
    return True


def channel_of(message: RabbitMessage) -> object:
    """The channel that delivered the message: who holds the queue for this delivery."""
    try:
        return message.raw_message.channel
    except ChannelInvalidStateError:
        raise DeliveryLost from None


def headers_of(message: RabbitMessage) -> dict[str, Any]:
    return dict(message.raw_message.headers or {})


def delivery_count(message: RabbitMessage) -> int:
    """How often the broker handed this message out before. RabbitMQ 3.x counts every return in
    x-delivery-count, a closed channel (our crash) included; 4.3 counts those in x-acquired-count only."""
    headers = headers_of(message)
    return max(int(headers.get("x-delivery-count", 0)), int(headers.get("x-acquired-count", 0)))


def traced(message: RabbitMessage) -> bool:
    """The message carries a trace context (sent in a user's action, or in something it caused)."""
    return context_of(headers_of(message)) is not None


@contextmanager
def consuming(message: RabbitMessage, queue: str) -> Iterator[Span]:
    """The span of one delivery, a child of the context its headers carry (else a trace of its own); named
    after the queue until the consumer has read the message and names it after its type."""
    raw = message.raw_message
    attributes = {"messaging.system": "rabbitmq", "messaging.operation": "process",
                  "messaging.destination.name": queue, "messaging.message.id": raw.message_id or ""}
    parent = context_of(headers_of(message), with_baggage=raw.exchange != COMMANDS)
    with span(queue, kind=SpanKind.CONSUMER, parent=parent or Context(), attributes=attributes) as current:
        yield current


@dataclass(frozen=True)
class Delivery:
    """One delivery from `queue`, and the broker and failure classes to settle it with."""

    message: RabbitMessage
    queue: str
    broker: RabbitBroker
    transient_errors: tuple[type[BaseException], ...]
    redact: Redactor

    async def patiently(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run `step` until it passes; transient errors wait with capped backoff and hold the queue,
        until the delivery's channel is gone (then the broker hands the message to a live consumer)."""
        pause = 0.1
        while True:
            try:
                return await step()
            except self.transient_errors as error:
                if not alive(self.message):
                    raise DeliveryLost from error
                log.warning("transient %s; retrying in %.1fs", type(error).__name__, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE_S)

    async def ack(self) -> None:
        try:
            channel_of(self.message)
            await self.message.ack()
        except (ChannelInvalidStateError, AiormqChannelInvalidStateError):
            raise DeliveryLost from None

    async def set_aside(self, reason: str) -> None:
        """Into the queue's dead-letter queue, then acked. A full dead-letter queue refuses it: the
        message stays unacked here (never requeued in a hot loop) and operators are told, more
        rarely the longer it lasts, until there is room."""
        raw = self.message.raw_message
        headers = {k: v for k, v in headers_of(self.message).items() if k != "traceparent"}
        pause = 1.0
        while True:
            try:
                await self.patiently(lambda: publish(
                    self.broker, self.redact(self.message.body), exchange=dead_letter_exchange(service_of(self.queue)),
                    routing_key=self.queue, headers={**headers, REASON_HEADER: reason[:1000]},
                    message_id=raw.message_id or "", correlation_id=raw.correlation_id, traced=False,
                ))
                break
            except DeliveryError:
                if not alive(self.message):
                    raise DeliveryLost from None
                log.error("dead-letter queue %s refuses %s (full?): it stays unacked in %s until there is room; "
                          "trying again in %.0f s", dead_letter_queue(self.queue), raw.message_id, self.queue, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_FULL_PAUSE_S)
        await self.ack()

    async def settle_safely(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run the delivery's work; a lost channel is left to the broker, a failure to settle
        gives the message back rather than hold the queue."""
        try:
            await work()
        except DeliveryLost:
            log.warning("channel of %s closed; the broker redelivers it", self.message.raw_message.message_id)
        except Exception:
            log.exception("could not settle %s; returning it to the queue", self.message.raw_message.message_id)
            try:
                await self.message.nack(requeue=True)
            except Exception:  # the channel is gone too: the broker redelivers it anyway
                log.debug("nack failed", exc_info=True)


def parse_once_more(delivery: Delivery, parse: Callable[[bytes], T], *, delivery_limit: int, through: str) -> T:
    """An event or work item, unless it came too often (a crash loop), not through `through` (the
    default exchange reaches any queue), is too large to read, or does not match its contract."""
    if delivery_count(delivery.message) >= delivery_limit - 1:
        raise SetAside("delivered too often without being settled (a crash loop?)")
    if (exchange := delivery.message.raw_message.exchange) != through:
        raise SetAside(f"arrived through {exchange!r}, not {through!r}")
    refuse_oversized(delivery.message.body)
    try:
        return parse(delivery.message.body)
    except ValidationError as error:
        raise SetAside(schema_reason(invalid(error))) from None


async def ack_or_set_aside(delivery: Delivery, work: Callable[[], Awaitable[None]]) -> None:
    """For messages nobody waits an answer for: ack once `work` is done, or set them aside."""
    try:
        await work()
        await delivery.ack()
    except SetAside as aside:
        await delivery.set_aside(aside.reason)


TOO_LARGE_REPLY = SharedRejected(code="invalid_message", message=f"the message is larger than {MAX_BODY_BYTES} bytes",
                                 errors=(SharedFieldError(field="body", code="too_large", message=f"at most {MAX_BODY_BYTES} bytes",
                                                          params={"max_bytes": MAX_BODY_BYTES}),))


def refuse_oversized(body: bytes) -> None:
    """Before any parsing: a huge body would cost memory in proportion, whatever it holds."""
    if len(body) > MAX_BODY_BYTES:
        raise SetAside(f"body of {len(body)} bytes is over the limit of {MAX_BODY_BYTES}", TOO_LARGE_REPLY)


def invalid(error: ValidationError) -> Rejected:
    errors = tuple(_schema_error(e) for e in error.errors(include_input=False, include_url=False))
    return SharedRejected(code="invalid_message", message="the message does not match the contract", errors=errors)


SCHEMA_CODES: dict[str, SharedFieldCode] = {code: code for code in FIELD_CODES if code not in ("invalid_value", "too_large")}
"""pydantic's error types the contract names; any other is answered as `invalid_value`"""


def _schema_error(e: ErrorDetails) -> SharedFieldError:
    code = SCHEMA_CODES.get(e["type"], "invalid_value")
    context = e.get("ctx", {})
    params = {name: _param(context[name]) for name in FIELD_PARAMS[code] if name in context}
    return SharedFieldError(field=_field_name(e["loc"]), code=code, message=e["msg"], params=params)


def _param(value: object) -> int | str:
    return value if isinstance(value, int) and not isinstance(value, bool) else str(value)


def schema_reason(rejected: Rejected) -> str:
    return "schema: " + "; ".join(f"{e.field}: {e.message}" for e in rejected.errors)


def _field_name(loc: tuple[Any, ...]) -> str:
    """Contract fields are snake_case; a leading CamelCase part is the union's message type."""
    if len(loc) > 1 and isinstance(loc[0], str) and loc[0][:1].isupper():
        loc = loc[1:]
    return ".".join(map(str, loc)) or "body"
