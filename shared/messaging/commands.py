"""The command consumer: one delivery from a command shard becomes exactly one reply and at most
one state change.

admit (invalid: set aside, reply `invalid_message`) -> open the aggregate's unit of work ->
replay? answer the stored reply : handle and commit in one write -> follow (the service makes the
outside world match the stored state) -> reply -> ack -> relay the outbox (one relay of the shard
at a time, so the next command is decided while this one's events are confirmed).
Transient failures (database or broker away) are retried in place with capped backoff, which
holds the shard and so the account's order; a crash anywhere before the ack redelivers the
command, which then finds itself applied and is answered as before. FlushOutbox (from the
sweeper) is the kit's own: it relays and trims, no service sees it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from aio_pika.exceptions import DeliveryError
from aiormq import spec
from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage
from pydantic import ValidationError

from shared.broker_access import may_send
from shared.contracts.base import (
    Accepted,
    Deferred,
    FlushOutbox,
    InternalCommand,
    Keyed,
    Rejected,
    Requester,
    SharedRejected,
    WorkItem,
)
from shared.messaging.delivery import (
    Delivery,
    DeliveryLost,
    SetAside,
    alive,
    channel_of,
    consuming,
    delivery_count,
    headers_of,
    invalid,
    refuse_oversized,
    schema_reason,
    traced,
)
from shared.messaging.outbox import OutboxRelay
from shared.messaging.redaction import Redactor
from shared.messaging.unit_of_work import Applied, Doc, ShardAggregates, StaleAggregate, UnitOfWork, digest
from shared.telemetry import cause, caused_by, describe, note, outcome
from shared.topology import ACCOUNT_KEY_HEADER, COMMANDS, DIRECT_REPLY_TO

log = logging.getLogger(__name__)

UNAVAILABLE = SharedRejected(code="unavailable", message="the command could not be processed and was set aside for operators")
Reply = Accepted | Rejected
Handler = Callable[[Any, UnitOfWork], Awaitable[Reply | Deferred]]
Follow = Callable[[str, Doc | None], Awaitable[None]]
"""Makes the outside world (e.g. the mail server) match an aggregate's stored state; idempotent."""
StartNow = Callable[[WorkItem], None]
"""Starts an EAGER work item in this process (shared/messaging/work.py)."""


@dataclass
class _Turn:
    """What one delivery has done so far, so no retried step repeats a finished one."""

    reply: Reply | Deferred | None = None
    state: Doc | None = None
    changed: bool = False
    followed: bool = False
    answered: bool = False
    acked: bool = False


@dataclass(frozen=True)
class CommandConsumer:
    queue: str
    broker: RabbitBroker
    internal_exchange: str
    parse: Callable[[bytes], Keyed]
    handlers: Mapping[type, Handler]
    aggregates: ShardAggregates
    relay: OutboxRelay
    transient_errors: tuple[type[BaseException], ...]
    delivery_limit: int
    redact: Redactor
    follow: Follow | None = None
    start_now: StartNow | None = None
    relaying: asyncio.Lock = field(default_factory=asyncio.Lock, compare=False)

    async def __call__(self, message: RabbitMessage) -> None:
        delivery = Delivery(message, self.queue, self.broker, (*self.transient_errors, StaleAggregate), self.redact)
        with consuming(message, self.queue):
            await delivery.settle_safely(lambda: self._consume(delivery))

    async def _consume(self, delivery: Delivery) -> None:
        turn = _Turn()
        try:
            command = self._admit(delivery)
            self.aggregates.claim(channel_of(delivery.message))
            await self._run(delivery, command, turn)
        except SetAside as aside:
            outcome("set aside", failed=True)
            await self._answer(delivery, aside.reply, turn)
            await delivery.set_aside(aside.reason)
            return
        outcome(_outcome_of(turn.reply))
        if turn.acked and not isinstance(command, FlushOutbox):
            await self._relay_after_ack(delivery, command.subject_key())

    def _admit(self, delivery: Delivery) -> Keyed:
        if delivery_count(delivery.message) >= self.delivery_limit - 1:
            raise SetAside("delivered too often without an answer (a crash loop?)", UNAVAILABLE)
        refuse_oversized(delivery.message.body)
        try:
            command = self.parse(delivery.message.body)
        except ValidationError as error:
            rejected = invalid(error)
            raise SetAside(schema_reason(rejected), rejected) from None
        describe(command)
        note(account=command.subject_key())
        if headers_of(delivery.message).get(ACCOUNT_KEY_HEADER) != command.subject_key():
            raise SetAside(f"header {ACCOUNT_KEY_HEADER} does not match the command's account")
        self._check_way_in(delivery, command)
        return command

    def _check_way_in(self, delivery: Delivery, command: Keyed) -> None:
        """Internal commands carry no session: only the service itself may send them."""
        exchange = delivery.message.raw_message.exchange
        if isinstance(command, InternalCommand) and exchange != self.internal_exchange:
            raise SetAside(f"internal command {type(command).__name__} arrived through {exchange!r}",
                           SharedRejected(code="forbidden", message="internal commands are not accepted from clients"))
        if not isinstance(command, InternalCommand) and exchange != COMMANDS:
            raise SetAside(f"client command arrived through {exchange!r}")
        sender = getattr(delivery.message.raw_message, "user_id", None)
        if not isinstance(command, InternalCommand) and not may_send(sender, type(command).__name__):
            raise SetAside(f"{type(command).__name__} from {sender or 'an unnamed sender'}, who may not send it",
                           SharedRejected(code="forbidden", message=f"this sender may not send {type(command).__name__}"))

    async def _run(self, delivery: Delivery, command: Keyed, turn: _Turn) -> None:
        key = command.subject_key()
        try:
            await delivery.patiently(lambda: self._decide(delivery, command, turn))
            if self.follow and turn.changed and not turn.followed:
                await self._follow_or_report(delivery, key, turn)
            assert turn.reply is not None
            await self._answer(delivery, turn.reply, turn, getattr(command, "answers", None))
            if isinstance(command, FlushOutbox):
                await self._relay(delivery, key)
                await delivery.patiently(lambda: self.aggregates.trim(key))
            await delivery.ack()
            turn.acked = True
        except (SetAside, DeliveryLost):
            raise
        except Exception as error:  # a bug: answer, set the command aside, keep serving
            log.exception("command %s failed", delivery.message.raw_message.message_id)
            self.aggregates.forget(key)
            raise SetAside(f"unhandled {type(error).__name__}", UNAVAILABLE) from error

    async def _relay(self, delivery: Delivery, key: str) -> None:
        """One relay of the shard at a time, so each aggregate's messages leave in order."""
        async with self.relaying:
            await delivery.patiently(lambda: self.relay.flush(self.aggregates, key, channel_of(delivery.message)))

    async def _relay_after_ack(self, delivery: Delivery, key: str) -> None:
        """The decision is stored, its messages with it: the shard may take the next command while they
        are published. Whatever is not published now stays in the outbox, for the key's next command
        or the sweeper."""
        try:
            await self._relay(delivery, key)
        except DeliveryLost:
            log.warning("channel closed while relaying for %s; the outbox keeps the rest", key)
        except Exception:
            log.exception("relay for %s failed; the outbox keeps the rest", key)

    async def _decide(self, delivery: Delivery, command: Keyed, turn: _Turn) -> None:
        """Handle once, however often later steps are retried; a stale aggregate decides again."""
        if turn.reply is not None:
            return
        if isinstance(command, FlushOutbox):  # the sweeper saw the database: look there, not at the cache
            await self.aggregates.refresh(command.subject_key())
            turn.reply = Accepted(command_id=command.message_id)
            return
        unit = await self.aggregates.open(command.subject_key())
        with self._traced(delivery, unit):
            await self._handle(delivery, command, unit, turn)

    async def _handle(self, delivery: Delivery, command: Keyed, unit: UnitOfWork, turn: _Turn) -> None:
        message_id = str(command.message_id)
        if command.REPLAYABLE and (applied := unit.applied(message_id)):
            note(replayed=True)
            turn.reply, turn.state, turn.changed = self._replayed(command, applied, delivery.message.body, unit)
            return
        unit.requester = _requester(delivery.message)
        reply = await self.handlers[type(command)](command, unit)
        if not alive(delivery.message):  # the shard may be someone else's now: leave the command to them
            raise DeliveryLost
        record = (Applied(message_id, digest(delivery.message.body, self.redact), reply)
                  if command.REPLAYABLE and unit.staged and not isinstance(reply, Deferred) else None)
        await self.aggregates.commit(unit, record)
        self._start_eager(unit)
        turn.reply, turn.state, turn.changed = reply, unit.state, unit.staged

    @staticmethod
    def _traced(delivery: Delivery, unit: UnitOfWork) -> AbstractContextManager[None]:
        """A command of a user's action (or of what it caused) is remembered with the aggregate as its latest
        cause; one that comes without (a sweep, a retry, a reconciler) is linked to that cause."""
        if traced(delivery.message):
            unit.trace = cause()
            return nullcontext()
        return caused_by(unit.cause)

    def _start_eager(self, unit: UnitOfWork) -> None:
        """Stored with the outbox: the queued copies are safe, so starting early loses nothing, and
        nothing here may fail the command."""
        if self.start_now is None or unit.removing:
            return
        for item in unit.work:
            if type(item).EAGER:
                try:
                    self.start_now(item)
                except Exception:
                    log.exception("could not start work item %s early; its queued copy runs it", item.message_id)

    def _replayed(self, command: Keyed, applied: Applied, body: bytes,
                  unit: UnitOfWork) -> tuple[Reply | Deferred, Doc | None, bool]:
        if applied.digest != digest(body, self.redact):
            return SharedRejected(command_id=command.message_id, code="invalid_message",
                            message="this message_id was already used by a different command"), None, False
        if getattr(command, "answers", None):  # a deferred answer names the command it answers, not this one
            return applied.reply, unit.state, True
        return applied.reply.model_copy(update={"command_id": command.message_id}), unit.state, True

    async def _follow_or_report(self, delivery: Delivery, key: str, turn: _Turn) -> None:
        """The decision is stored: whatever the outside world does now, the command stays accepted.
        A follow that fails for good is reported; the key's next command or replay follows again."""
        try:
            await delivery.patiently(lambda: self._follow(key, turn))
        except DeliveryLost:
            raise
        except Exception:
            log.exception("the outside world does not follow %s yet", key)

    async def _follow(self, key: str, turn: _Turn) -> None:
        assert self.follow is not None
        await self.follow(key, turn.state)
        turn.followed = True

    async def _answer(self, delivery: Delivery, reply: Reply | Deferred, turn: _Turn,
                      answers: Requester | None = None) -> None:
        """The reply to whoever asked: the delivery's requester, or the one a deferred command's answer
        goes to (`answers`); none yet for a Deferred."""
        if not turn.answered and not isinstance(reply, Deferred):
            await delivery.patiently(lambda: self._reply(delivery.message, reply, answers))
            turn.answered = True

    async def _reply(self, message: RabbitMessage, reply: Reply, answers: Requester | None) -> None:
        """On the delivering channel, straight through aiormq: a reply to direct reply-to is not a
        message to trace or keep, and FastStream's publish pipeline costs a millisecond."""
        raw = message.raw_message
        reply_to, correlation_id = (answers.reply_to, answers.correlation_id) if answers else (raw.reply_to, raw.correlation_id)
        if not reply_to:
            return
        if not reply_to.startswith(DIRECT_REPLY_TO):
            log.warning("reply to %s dropped: reply_to %r is not direct reply-to", raw.message_id, reply_to[:100])
            return
        properties = spec.Basic.Properties(correlation_id=correlation_id, content_type="application/json")
        try:
            await channel_of(message).basic_publish(  # type: ignore[attr-defined]
                reply.model_dump_json().encode(), routing_key=reply_to, properties=properties)
        except DeliveryError:
            log.info("requester of %s is gone; reply dropped", raw.message_id)


def _outcome_of(reply: Reply | Deferred | None) -> str:
    if isinstance(reply, Rejected):
        return reply.code
    return "deferred" if isinstance(reply, Deferred) else "accepted"


def _requester(message: RabbitMessage) -> Requester | None:
    """Who waits for the answer on direct reply-to (a client command), for a handler that answers later."""
    raw = message.raw_message
    if not (raw.reply_to and raw.reply_to.startswith(DIRECT_REPLY_TO) and raw.message_id):
        return None
    try:
        return Requester(reply_to=raw.reply_to, correlation_id=raw.correlation_id or raw.message_id,
                         command_id=raw.message_id)
    except ValueError:
        return None
