"""Hand-written fakes of the broker, the delivered message and the outbox store, offered as fixtures
(tests have no __init__.py). Every fake writes what it does into one shared journal, so a test can
assert the order of steps across them."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aio_pika.exceptions import ChannelInvalidStateError
from pydantic import TypeAdapter

from shared.contracts.account import AccountCommand
from shared.contracts.base import Accepted, Command, Rejected
from shared.messaging import CommandConsumer, EventPublisher, OutboxRelay
from shared.outbox import Entry
from shared.topology import ACCOUNT_KEY_HEADER

QUEUE = "account.commands.0"
REPLY_TO = "amq.rabbitmq.reply-to"
DELIVERY_LIMIT = 5
TRANSIENT_ERRORS = (ConnectionError, TimeoutError)

Journal = list[tuple[Any, ...]]
Reply = Accepted | Rejected
Published = tuple[bytes, dict[str, Any]]


def destination(kwargs: dict[str, Any]) -> str:
    """Where a publish goes: the exchange name ("" is the default exchange, used by replies)."""
    exchange = kwargs.get("exchange")
    return getattr(exchange, "name", exchange) or ""


class FakeBroker:
    """Records every publish; `fail` makes the next matching publishes raise instead."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.published: list[Published] = []
        self._error: BaseException | None = None
        self._failures_left = 0
        self._when: Callable[[bytes, dict[str, Any]], bool] = lambda body, kwargs: True

    def fail(self, error: BaseException, *, times: int = 1,
             when: Callable[[bytes, dict[str, Any]], bool] = lambda body, kwargs: True) -> None:
        self._error, self._failures_left, self._when = error, times, when

    async def publish(self, body: bytes, **kwargs: Any) -> None:
        step = (destination(kwargs), kwargs.get("routing_key"))
        if self._failures_left and self._when(body, kwargs):
            self._failures_left -= 1
            self.journal.append(("publish failed", *step))
            raise self._error
        self.published.append((body, kwargs))
        self.journal.append(("publish", *step))

    def to(self, exchange: str) -> list[Published]:
        return [(body, kwargs) for body, kwargs in self.published if destination(kwargs) == exchange]

    @property
    def replies(self) -> list[Published]:
        return self.to("")

    @property
    def events(self) -> list[Published]:
        return self.to("events")

    @property
    def set_aside(self) -> list[Published]:
        return self.to("dlx")


@dataclass
class FakeRawMessage:
    """The aio-pika message under faststream's RabbitMessage: only what CommandConsumer reads."""

    headers: dict[str, Any]
    message_id: str | None
    correlation_id: str | None
    reply_to: str | None
    channel_open: bool = True

    @property
    def channel(self) -> object:
        """Like aio-pika: reading the channel of a closed delivery raises."""
        if not self.channel_open:
            raise ChannelInvalidStateError("channel closed")
        return object()


@dataclass
class FakeMessage:
    """Stands in for faststream's RabbitMessage: a body, the raw message, and counted acks."""

    body: bytes
    raw_message: FakeRawMessage
    journal: Journal
    acks: int = 0

    nacks: int = 0

    async def ack(self) -> None:
        self.acks += 1
        self.journal.append(("ack",))

    async def nack(self, requeue: bool = True) -> None:
        self.nacks += 1
        self.journal.append(("nack", requeue))


class FakeOutboxStore:
    """shared.outbox.OutboxStore over a dict of pending entries per key; `fail_pending` injects errors."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.entries: dict[str, list[Entry]] = {}
        self.removed: list[tuple[str, list[str]]] = []
        self.forgotten: list[str] = []
        self._pending_errors: list[BaseException] = []

    def add(self, key: str, *entries: Entry) -> None:
        self.entries.setdefault(key, []).extend(entries)

    def fail_pending(self, *errors: BaseException) -> None:
        self._pending_errors.extend(errors)

    async def pending(self, key: str) -> list[Entry]:
        self.journal.append(("pending", key))
        if self._pending_errors:
            raise self._pending_errors.pop(0)
        return list(self.entries.get(key, []))

    async def remove(self, key: str, event_ids: list[str]) -> None:
        self.journal.append(("remove", key, tuple(event_ids)))
        self.removed.append((key, list(event_ids)))
        self.entries[key] = [e for e in self.entries.get(key, []) if e["id"] not in event_ids]

    def forget(self, key: str) -> None:
        self.journal.append(("forget", key))
        self.forgotten.append(key)


class FakeHandler:
    """The service's `handle(command) -> Reply`: plays a script of outcomes, then accepts."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.calls: list[Command] = []
        self.script: list[BaseException | Accepted | Rejected] = []

    def will(self, *outcomes: BaseException | Accepted | Rejected) -> None:
        self.script.extend(outcomes)

    async def __call__(self, command: Command) -> Accepted | Rejected:
        self.calls.append(command)
        self.journal.append(("handle", command.subject_key()))
        outcome = self.script.pop(0) if self.script else Accepted(command_id=command.message_id)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@pytest.fixture
def journal() -> Journal:
    return []


@pytest.fixture
def broker(journal: Journal) -> FakeBroker:
    return FakeBroker(journal)


@pytest.fixture
def store(journal: Journal) -> FakeOutboxStore:
    return FakeOutboxStore(journal)


@pytest.fixture
def handler(journal: Journal) -> FakeHandler:
    return FakeHandler(journal)


@pytest.fixture
def consumer(broker: FakeBroker, store: FakeOutboxStore, handler: FakeHandler) -> CommandConsumer:
    """The consumer as entrypoint.py builds it, over fakes; events go through a real EventPublisher."""
    return CommandConsumer(
        queue=QUEUE, broker=broker, parse=TypeAdapter(AccountCommand).validate_json, handle=handler,
        relay=OutboxRelay(store, EventPublisher(broker)), transient_errors=TRANSIENT_ERRORS,
        delivery_limit=DELIVERY_LIMIT,
    )


@pytest.fixture
def deliver(journal: Journal) -> Callable[..., FakeMessage]:
    """A delivery as the request/reply client sends it; any part can be overridden for bad input."""

    def make(command: Command, *, body: bytes | None = None, headers: dict[str, Any] | None = None,
             reply_to: str | None = REPLY_TO) -> FakeMessage:
        raw = FakeRawMessage(
            headers={ACCOUNT_KEY_HEADER: command.subject_key()} if headers is None else headers,
            message_id=str(command.message_id), correlation_id=str(command.message_id), reply_to=reply_to,
        )
        return FakeMessage(body=command.model_dump_json().encode() if body is None else body,
                           raw_message=raw, journal=journal)

    return make
