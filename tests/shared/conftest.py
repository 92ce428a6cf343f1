"""Hand-written fakes of the broker, the delivered message and the database collection, offered as fixtures
(tests have no __init__.py). Every fake writes what it does into one shared journal, so a test can
assert the order of steps across them."""

import copy
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aio_pika.exceptions import ChannelInvalidStateError
from pymongo.errors import DuplicateKeyError

from services.account.entrypoint import CLIENT_COMMANDS
from shared.contracts.account import CommentChanged, SetFirstAdmin
from shared.contracts.base import Accepted, Command, FlushOutbox, Keyed, Rejected
from shared.messaging.commands import CommandConsumer
from shared.messaging.outbox import OutboxRelay
from shared.messaging.redaction import Redactor
from shared.messaging.service import command_parser
from shared.messaging.unit_of_work import ShardAggregates, UnitOfWork
from shared.topology import ACCOUNT_KEY_HEADER

QUEUE = "account.commands.0"
REPLY_TO = "amq.rabbitmq.reply-to.g1h2AA5yZXBseQ"
DELIVERY_LIMIT = 5
TRANSIENT_ERRORS = (ConnectionError, TimeoutError)
CHANNEL = object()

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
        return self.to("account.dlx")


class FakeChannel:
    """The aiormq channel a message came through; replies are published on it (recorded by the broker)."""

    def __init__(self, broker: "FakeBroker") -> None:
        self._broker = broker

    async def basic_publish(self, body: bytes, *, routing_key: str, properties: Any, exchange: str = "",
                            mandatory: bool = False) -> None:
        await self._broker.publish(
            body, exchange=exchange, routing_key=routing_key, correlation_id=properties.correlation_id,
            message_id=properties.message_id, headers=properties.headers,
            persist=properties.delivery_mode == 2, mandatory=mandatory)


@dataclass
class FakeRawMessage:
    """The aio-pika message under faststream's RabbitMessage: only what CommandConsumer reads."""

    headers: dict[str, Any]
    message_id: str | None
    correlation_id: str | None
    reply_to: str | None
    exchange: str = "commands"
    delivered_on: object = None
    channel_open: bool = True
    user_id: str | None = "mailss-mailctl"
    """the sender as RabbitMQ verified it"""

    @property
    def channel(self) -> object:
        """Like aio-pika: reading the channel of a closed delivery raises."""
        if not self.channel_open:
            raise ChannelInvalidStateError("channel closed")
        return self.delivered_on


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


class FakeCollection:
    """The three calls ShardAggregates makes on a pymongo collection, over a dict; journaled."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.docs: dict[str, dict[str, Any]] = {}
        self._errors: list[BaseException] = []

    def fail_next(self, *errors: BaseException) -> None:
        self._errors.extend(errors)

    def _maybe_fail(self) -> None:
        if self._errors:
            raise self._errors.pop(0)

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        self.journal.append(("find", query["_id"]))
        self._maybe_fail()
        doc = self.docs.get(query["_id"])
        return copy.deepcopy(doc) if doc else None

    async def insert_one(self, doc: dict[str, Any]) -> None:
        self.journal.append(("insert", doc["_id"]))
        self._maybe_fail()
        if doc["_id"] in self.docs:
            raise DuplicateKeyError("duplicate _id")
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    async def delete_one(self, query: dict[str, Any]) -> SimpleNamespace:
        self.journal.append(("delete", query["_id"]))
        self._maybe_fail()
        doc = self.docs.get(query["_id"])
        if doc is None or not _matches(doc, query):
            return SimpleNamespace(deleted_count=0)
        del self.docs[query["_id"]]
        return SimpleNamespace(deleted_count=1)

    async def update_one(self, query: dict[str, Any], update: dict[str, Any]) -> SimpleNamespace:
        self.journal.append(("update", query["_id"]))
        self._maybe_fail()
        doc = self.docs.get(query["_id"])
        if doc is None or not _matches(doc, query):
            return SimpleNamespace(matched_count=0)
        doc.update(copy.deepcopy(update["$set"]))
        return SimpleNamespace(matched_count=1)


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for field, wanted in query.items():
        if isinstance(wanted, dict) and "$exists" in wanted:
            if (field in doc) != wanted["$exists"]:
                return False
        elif doc.get(field) != wanted:
            return False
    return True


class FakeHandler:
    """A service handler `(command, unit) -> Reply`: plays a script of outcomes; by default stages the
    comment and one CommentChanged event, and accepts."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.calls: list[Command] = []
        self.script: list[BaseException | Accepted | Rejected] = []

    def will(self, *outcomes: BaseException | Accepted | Rejected) -> None:
        self.script.extend(outcomes)

    async def __call__(self, command: Command, unit: UnitOfWork) -> Accepted | Rejected:
        self.calls.append(command)
        self.journal.append(("handle", command.subject_key()))
        outcome = self.script.pop(0) if self.script else None
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is not None:
            return outcome
        comment = getattr(command, "comment", "")
        unit.stage({"comment": comment, "seen": (unit.state or {}).get("seen", 0) + 1},
                   events=[CommentChanged(address=unit.key, comment=comment, actor=unit.key)])
        return Accepted(command_id=command.message_id, result={"address": unit.key})


@pytest.fixture
def journal() -> Journal:
    return []


@pytest.fixture
def broker(journal: Journal) -> FakeBroker:
    return FakeBroker(journal)


@pytest.fixture
def collection(journal: Journal) -> FakeCollection:
    return FakeCollection(journal)


@pytest.fixture
def aggregates(collection: FakeCollection) -> ShardAggregates:
    return ShardAggregates(collection, service="account")  # type: ignore[arg-type]


@pytest.fixture
def handler(journal: Journal) -> FakeHandler:
    return FakeHandler(journal)


@pytest.fixture
def consumer(broker: FakeBroker, aggregates: ShardAggregates, handler: FakeHandler) -> CommandConsumer:
    """The consumer as the kit builds it, over fakes; the unit of work and the relay are the real ones."""
    return CommandConsumer(
        queue=QUEUE, broker=broker, internal_exchange="account.internal",  # type: ignore[arg-type]
        parse=command_parser((*CLIENT_COMMANDS, SetFirstAdmin, FlushOutbox)),
        handlers={kind: handler for kind in (*CLIENT_COMMANDS, SetFirstAdmin)}, aggregates=aggregates,
        relay=OutboxRelay(), transient_errors=TRANSIENT_ERRORS,  # type: ignore[arg-type]
        delivery_limit=DELIVERY_LIMIT, redact=Redactor.for_messages((*CLIENT_COMMANDS, SetFirstAdmin, FlushOutbox)),
    )


@pytest.fixture
def deliver(journal: Journal, broker: FakeBroker) -> Callable[..., FakeMessage]:
    """A delivery as the request/reply client sends it; any part can be overridden for bad input.
    `channel` is any token: deliveries with the same token come through the same channel."""
    channels: dict[int, tuple[object, FakeChannel]] = {}

    def make(command: Keyed, *, body: bytes | None = None, headers: dict[str, Any] | None = None,
             reply_to: str | None = REPLY_TO, exchange: str = "commands", channel: object = CHANNEL,
             user_id: str | None = "mailss-mailctl") -> FakeMessage:
        raw = FakeRawMessage(
            headers={ACCOUNT_KEY_HEADER: command.subject_key()} if headers is None else headers,
            message_id=str(command.message_id), correlation_id=str(command.message_id), reply_to=reply_to,
            exchange=exchange, delivered_on=channels.setdefault(id(channel), (channel, FakeChannel(broker)))[1],
            user_id=user_id,
        )
        return FakeMessage(body=command.model_dump_json().encode() if body is None else body,
                           raw_message=raw, journal=journal)

    return make
