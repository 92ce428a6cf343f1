"""The event consumer: an event a service reacts to becomes that service's own internal command,
sent through its own shard (so each aggregate keeps one writer) on its internal exchange.

The command's message_id and occurred_at are the event's (the id derived from it), so an event
delivered twice yields the same command twice, which the unit of work recognises as applied: the
reaction happens once.
"""

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial, reduce
from operator import or_
from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage
from pydantic import TypeAdapter

from shared.broker_access import user_of
from shared.contracts.base import Event, InternalCommand
from shared.messaging.broker import send_internal
from shared.messaging.delivery import Delivery, SetAside, ack_or_set_aside, consuming, parse_once_more
from shared.messaging.redaction import Redactor
from shared.telemetry import describe, note, outcome
from shared.topology import EVENTS

log = logging.getLogger(__name__)

Reaction = Callable[[Any], Sequence[InternalCommand]]
"""event -> the internal commands it becomes (none: ignored)"""
KIT_NAMESPACE = uuid.UUID("5b0f8f0e-3a52-4a39-9d1e-6a1f0c6f7d10")


def command_id_for(service: str, event: Event, position: int) -> uuid.UUID:
    return uuid.uuid5(KIT_NAMESPACE, f"{service}:{event.message_id}:{position}")


def event_parser(reactions: Mapping[type[Event], Reaction]) -> Callable[[bytes], Event]:
    """Events are told apart by their `type` field."""
    union: Any = reduce(or_, reactions)
    adapter: TypeAdapter[Event] = TypeAdapter(union)
    return adapter.validate_json


def owner_of(event: Event) -> str:
    """The broker user of the service that owns an event's type: its routing key's first word."""
    return user_of(event.ROUTING_KEY.partition(".")[0])


def from_its_owner(event: Event, raw: Any) -> None:
    """An event is its owner's word only: published by the service that owns its type (RabbitMQ checks
    a message's `user_id` against the publisher's own user), under that type's routing key. Another
    service's user may publish under its own keys, but never speak for the owner."""
    owner, publisher = owner_of(event), getattr(raw, "user_id", None)
    if publisher != owner:
        raise SetAside(f"{type(event).__name__} published by {publisher or 'an unnamed publisher'}, not by its owner {owner}")
    if (key := getattr(raw, "routing_key", None)) != event.ROUTING_KEY:
        raise SetAside(f"{type(event).__name__} arrived under {key!r}, not its own routing key {event.ROUTING_KEY!r}")


@dataclass(frozen=True)
class EventConsumer:
    queue: str
    broker: RabbitBroker
    service: str
    parse: Callable[[bytes], Event]
    reactions: Mapping[type[Event], Reaction]
    transient_errors: tuple[type[BaseException], ...]
    delivery_limit: int
    redact: Redactor

    async def __call__(self, message: RabbitMessage) -> None:
        delivery = Delivery(message, self.queue, self.broker, self.transient_errors, self.redact)
        with consuming(message, self.queue):
            await delivery.settle_safely(lambda: ack_or_set_aside(delivery, lambda: self._react(delivery)))

    async def _react(self, delivery: Delivery) -> None:
        """Its span is named after the event; the commands it becomes carry its context."""
        try:
            event = parse_once_more(delivery, self.parse, delivery_limit=self.delivery_limit, through=EVENTS)
            describe(event)
            from_its_owner(event, delivery.message.raw_message)
        except SetAside:
            outcome("set aside", failed=True)
            raise
        commands = self.commands_for(event)
        note(commands=len(commands))
        for command in commands:
            await delivery.patiently(partial(self._send, command))

    def commands_for(self, event: Event) -> list[InternalCommand]:
        commands = self.reactions[type(event)](event)
        return [command.model_copy(update={
            "message_id": command_id_for(self.service, event, n), "occurred_at": event.occurred_at,
            "causation_id": event.message_id,
            "correlation_id": event.correlation_id or event.message_id,
        }) for n, command in enumerate(commands)]

    async def _send(self, command: InternalCommand) -> None:
        await send_internal(self.broker, self.service, command)
