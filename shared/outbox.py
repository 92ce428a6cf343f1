"""Events waiting in their aggregate's document until the relay has published them."""

from datetime import UTC, datetime
from typing import Any, Protocol

from opentelemetry import propagate

from shared.contracts.base import Event

Entry = dict[str, Any]


def trace_headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def to_outbox(event: Event) -> Entry:
    """An event as stored in its aggregate's outbox, with the trace context of the command."""
    return {"id": str(event.message_id), "routing_key": event.ROUTING_KEY, "body": event.model_dump_json(),
            "headers": trace_headers(), "at": datetime.now(UTC)}


class OutboxStore(Protocol):
    async def pending(self, key: str) -> list[Entry]: ...

    async def remove(self, key: str, event_ids: list[str]) -> None:
        """Drop events once published."""

    def forget(self, key: str) -> None:
        """End the key's turn: nothing read during it may be reused by a later turn."""
