"""Messages waiting in their aggregate's document until the relay has published them, and the
sweeper that finds outboxes left behind.

An entry names its exchange: events go to `events`, work items and internal commands to the service's
internal exchange.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aiormq import spec
from faststream.rabbit import RabbitBroker
from opentelemetry.trace import SpanKind

from shared.contracts.base import Event, FlushOutbox, InternalCommand, WorkItem
from shared.messaging.broker import send_internal
from shared.telemetry import attributes_of, span, trace_headers
from shared.topology import ACCOUNT_KEY_HEADER, EVENTS, internal_exchange, work_routing_key

log = logging.getLogger(__name__)

Entry = dict[str, Any]


def _entry(message: Event | WorkItem | InternalCommand, exchange: str, routing_key: str) -> Entry:
    return {"id": str(message.message_id), "exchange": exchange, "routing_key": routing_key,
            "body": message.model_dump_json(), "headers": trace_headers(), "at": datetime.now(UTC)}


def event_entry(event: Event) -> Entry:
    """An event as stored in its aggregate's outbox, under a span of its own in the command's trace (named
    after the event, there even when no service consumes it), whose context its consumers continue."""
    with span(type(event).__name__, kind=SpanKind.PRODUCER, attributes=attributes_of(event)):
        return _entry(event, EVENTS, event.ROUTING_KEY)


def work_entry(service: str, item: WorkItem) -> Entry:
    return _entry(item, internal_exchange(service), work_routing_key(type(item).QUEUE))


def command_entry(service: str, command: InternalCommand) -> Entry:
    """An internal command to another aggregate of the same service (e.g. a read side kept per domain),
    routed to that aggregate's shard: it is decided in that aggregate's turn, by its one writer."""
    entry = _entry(command, internal_exchange(service), service)
    entry["headers"][ACCOUNT_KEY_HEADER] = command.subject_key()
    return entry


class OutboxStore(Protocol):
    async def pending(self, key: str) -> list[Entry]:
        """Entries of the key's outbox not yet known to be published."""

    def relayed(self, key: str, entry_ids: list[str]) -> None:
        """Published: the next write of the aggregate drops them from its outbox."""


class Unroutable(Exception):
    """The broker took a mandatory message but had no queue for it."""


@dataclass(frozen=True)
class OutboxRelay:
    """Publishes an aggregate's pending entries on the channel of the delivery whose turn it is:
    persistent, mandatory, each confirmed before the next, with the trace context of the command
    that staged it (straight through aiormq: FastStream's publish pipeline would double the cost).
    Each names its publisher (`user_id`, the service's broker user, which RabbitMQ verifies), so a
    consumer knows which service an event comes from."""

    user_id: str | None = None

    async def flush(self, store: OutboxStore, key: str, channel: Any) -> None:
        for entry in await store.pending(key):
            await self.publish_entry(entry, channel)
            store.relayed(key, [entry["id"]])  # each as confirmed: a retry resumes after it

    async def publish_entry(self, entry: Entry, channel: Any) -> None:
        properties = spec.Basic.Properties(
            message_id=entry["id"], content_type="application/json", delivery_mode=2, headers=entry.get("headers", {}),
            user_id=self.user_id)
        confirmation = await channel.basic_publish(
            entry["body"].encode(), exchange=entry.get("exchange", EVENTS), routing_key=entry["routing_key"],
            properties=properties, mandatory=True)
        if confirmation is not None and not isinstance(confirmation, spec.Basic.Ack):
            raise Unroutable(f"{entry['routing_key']} on {entry.get('exchange', EVENTS)}")


@dataclass
class OutboxSweeper:
    """Finds outboxes left behind (a relay that failed for good, or published entries of an idle
    aggregate not yet trimmed) and asks the owning shard to flush them, so the one writer of each
    aggregate stays the only writer. A key that stays stuck is asked again less and less often."""

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
        await send_internal(self.broker, self.service, FlushOutbox(key=key))
