"""What a handler's turn may leave besides a reply, over the fakes in conftest.py: an aggregate removed,
work started early, and an answer deferred to a later internal command."""

import json
import uuid
from typing import Literal

from shared.contracts.account import ChangeComment, ChangeQuota
from shared.contracts.base import Accepted, Deferred, InternalCommand, Rejected, Requester, WorkItem
from shared.messaging.commands import CommandConsumer
from shared.messaging.outbox import OutboxRelay
from shared.messaging.redaction import Redactor
from shared.messaging.service import command_parser
from tests.shared.test_command_consumer import ADDRESS, REPLY, TOKEN, change_comment, destination


async def _remove(command, unit):
    unit.remove()
    return Accepted(command_id=command.message_id)


async def test_an_aggregate_can_be_forgotten_once_its_messages_are_out(consumer, collection, deliver):
    """Ensure a handler that removes its aggregate deletes the document, replay records and all."""
    await consumer(deliver(change_comment()))
    consumer.handlers[ChangeQuota] = _remove

    await consumer(deliver(ChangeQuota(actor_token=TOKEN, address=ADDRESS, quota_mb=1)))

    assert ADDRESS not in collection.docs


async def test_an_aggregate_with_messages_still_to_publish_is_kept(consumer, broker, collection, deliver):
    """Ensure removal waits while an event of the aggregate is not yet published (it would be lost)."""
    broker.fail(KeyError("broker"), when=lambda body, kwargs: destination(kwargs) == "events")
    await consumer(deliver(change_comment()))
    consumer.handlers[ChangeQuota] = _remove

    await consumer(deliver(ChangeQuota(actor_token=TOKEN, address=ADDRESS, quota_mb=1)))

    assert len(collection.docs[ADDRESS]["outbox"]) == 1


class EagerItem(WorkItem):
    QUEUE = "eager"
    OVERLAP_SAFE = True
    EAGER = True
    type: Literal["EagerItem"] = "EagerItem"


class QueuedItem(WorkItem):
    QUEUE = "queued"
    type: Literal["QueuedItem"] = "QueuedItem"


async def test_an_eager_work_item_starts_right_after_the_write_that_stores_it(broker, aggregates, collection, deliver,
                                                                             journal):
    """Ensure an EAGER item is started in the process once its command's write is stored (a failed
    write starts nothing), before the reply; a plain item only goes through the queue, and both are
    relayed there."""
    async def stage_both(command, unit):
        journal.append(("handle", unit.key))
        unit.stage({"comment": command.comment}, work=[EagerItem(), QueuedItem()])
        return Accepted(command_id=command.message_id)

    consumer = CommandConsumer(
        queue="account.commands.0", broker=broker, internal_exchange="account.internal",
        parse=command_parser((ChangeComment,)), handlers={ChangeComment: stage_both}, aggregates=aggregates,
        relay=OutboxRelay(), transient_errors=(ConnectionError,), delivery_limit=5,
        redact=Redactor.for_messages((ChangeComment,)),
        start_now=lambda item: journal.append(("start now", type(item).__name__)),
    )
    collection.fail_next(ConnectionError("database away"))
    message = deliver(change_comment())

    await consumer(message)

    started = [step for step in journal if step[0] == "start now"]
    assert started == [("start now", "EagerItem")]
    assert journal.index(started[0]) == journal.index(("insert", ADDRESS)) + 1
    assert journal.index(started[0]) < journal.index(("ack",))
    assert sorted(json.loads(body)["type"] for body, _ in broker.to("account.internal")) == ["EagerItem", "QueuedItem"]


class Answer(InternalCommand):
    KEY_FIELD = "address"
    type: Literal["Answer"] = "Answer"
    address: str
    answers: Requester | None = None


async def test_a_deferred_answer_goes_to_the_client_with_the_later_command(broker, aggregates, deliver, journal):
    """Ensure a handler that defers sends no reply and records no replay (a redelivery asks again),
    while what it staged is stored; the internal command carrying the client's Requester is answered
    to that client, with its own command's id, on its correlation id."""
    asked: list[Requester | None] = []

    async def defer(command, unit):
        asked.append(unit.requester)
        unit.stage({"waiting": str(command.message_id)})
        return Deferred()

    async def answer(command, unit):
        assert command.answers is not None
        return Accepted(command_id=command.answers.command_id, result={"answered": True})

    consumer = CommandConsumer(
        queue="account.commands.0", broker=broker, internal_exchange="account.internal",
        parse=command_parser((ChangeComment, Answer)), handlers={ChangeComment: defer, Answer: answer},
        aggregates=aggregates, relay=OutboxRelay(), transient_errors=(ConnectionError,), delivery_limit=5,
        redact=Redactor.for_messages((ChangeComment, Answer)))
    command = change_comment()

    first = deliver(command)
    await consumer(first)
    await consumer(deliver(command))

    assert broker.replies == [] and first.acks == 1
    assert len(asked) == 2 and asked[0] is not None and asked[0].command_id == command.message_id
    later = Answer(message_id=uuid.uuid4(), address=ADDRESS, answers=asked[0])
    await consumer(deliver(later, exchange="account.internal", reply_to=None))

    [(body, kwargs)] = broker.replies
    reply = REPLY.validate_json(body)
    assert isinstance(reply, Accepted) and reply.command_id == command.message_id and reply.result == {"answered": True}
    assert kwargs["routing_key"] == asked[0].reply_to
    assert kwargs["correlation_id"] == asked[0].correlation_id
    assert not isinstance(reply, Rejected) and TOKEN not in body.decode()

    await consumer(deliver(later, exchange="account.internal", reply_to=None))  # delivered again: answered as before
    again = REPLY.validate_json(broker.replies[-1][0])
    assert again == reply and again.command_id == command.message_id
