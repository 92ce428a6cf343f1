"""CommandConsumer, its unit of work and the relay over the hand-written fakes in conftest.py: one delivery becomes
one reply, at most one state change, its events relayed, and exactly one ack."""

import asyncio
import copy
import json

import pytest
from pydantic import TypeAdapter

from services.account.entrypoint import CLIENT_COMMANDS
from shared.contracts.account import ChangeComment, ChangeQuota, Login, SetFirstAdmin
from shared.contracts.base import Accepted, FlushOutbox, Rejected
from shared.messaging.commands import CommandConsumer
from shared.messaging.delivery import REASON_HEADER
from shared.messaging.outbox import OutboxRelay
from shared.messaging.redaction import Redactor
from shared.messaging.service import command_parser
from shared.topology import ACCOUNT_KEY_HEADER

ADDRESS = "a@example.jp"
TOKEN = "actor-token-never-leaks"
PASSWORD = "Leaky-Secret-123!"
REPLY = TypeAdapter(Accepted | Rejected)
redact = Redactor.for_messages((*CLIENT_COMMANDS, SetFirstAdmin, FlushOutbox))


def change_comment(comment: str = "x") -> ChangeComment:
    return ChangeComment(actor_token=TOKEN, address=ADDRESS, comment=comment)


def destination(kwargs) -> str:
    exchange = kwargs.get("exchange")
    return getattr(exchange, "name", exchange) or ""


def the_reply(broker) -> Accepted | Rejected:
    assert len(broker.replies) == 1, broker.replies
    return REPLY.validate_json(broker.replies[0][0])


def the_set_aside(broker) -> tuple[bytes, dict]:
    assert len(broker.set_aside) == 1, broker.set_aside
    return broker.set_aside[0]


async def test_valid_command_is_decided_written_once_answered_relayed_and_acked(
    consumer, broker, collection, handler, deliver, journal
):
    """Ensure a command is read, handled, written in one write with its applied record and outbox,
    answered, acked, then its events relayed, in that order."""
    command = change_comment()
    message = deliver(command)

    await consumer(message)

    assert handler.calls == [command]
    reply = the_reply(broker)
    assert isinstance(reply, Accepted) and reply.command_id == command.message_id
    _, reply_kwargs = broker.replies[0]
    assert reply_kwargs["routing_key"] == message.raw_message.reply_to
    assert reply_kwargs["correlation_id"] == str(command.message_id)
    [(_, event_kwargs)] = broker.events
    assert event_kwargs["persist"] and event_kwargs["mandatory"]
    stored = collection.docs[ADDRESS]
    assert stored["comment"] == "x" and stored["version"] == 1
    assert [e["id"] for e in stored["outbox"]] == [event_kwargs["message_id"]]
    assert stored["applied"][0].startswith(str(command.message_id) + " ")
    assert broker.set_aside == [] and message.acks == 1
    assert journal == [
        ("find", ADDRESS), ("handle", ADDRESS), ("insert", ADDRESS),
        ("publish", "", message.raw_message.reply_to), ("ack",),
        ("publish", "events", "account.account.comment_changed"),
    ]


async def test_later_commands_of_a_cached_aggregate_cost_one_write(consumer, collection, deliver, journal):
    """Ensure the shard's consumer keeps the aggregate it wrote: the next command reads nothing, and its
    one write drops the entries already relayed from the outbox."""
    await consumer(deliver(change_comment("one")))
    journal.clear()

    await consumer(deliver(change_comment("two")))

    assert [step for step in journal if step[0] in ("find", "insert", "update")] == [("update", ADDRESS)]
    stored = collection.docs[ADDRESS]
    assert (stored["comment"], stored["seen"], stored["version"]) == ("two", 2, 2)
    assert [json.loads(e["body"])["comment"] for e in stored["outbox"]] == ["two"]


async def test_a_new_channel_starts_cold(consumer, deliver, journal):
    """Ensure deliveries through another channel (a takeover, a reconnect) read the aggregate again."""
    await consumer(deliver(change_comment("one")))
    journal.clear()

    await consumer(deliver(change_comment("two"), channel=object()))

    assert journal[0] == ("find", ADDRESS)


async def test_aggregate_written_behind_the_cache_is_decided_again(consumer, collection, handler, deliver, broker):
    """Ensure a write by another instance (the version moved on) is detected: the command is decided again
    from a fresh read, and neither write is lost."""
    await consumer(deliver(change_comment("one")))
    collection.docs[ADDRESS].update(version=7, seen=10, quota_mb=200)  # another instance held the shard meanwhile

    await consumer(deliver(change_comment("two")))

    assert len(handler.calls) == 3
    stored = collection.docs[ADDRESS]
    assert (stored["comment"], stored["seen"], stored["quota_mb"], stored["version"]) == ("two", 11, 200, 8)
    assert [REPLY.validate_json(body).status for body, _ in broker.replies] == ["accepted", "accepted"]


async def test_replayed_command_is_answered_as_before_and_changes_nothing(consumer, collection, handler, deliver, broker):
    """Ensure a command delivered again (even after a restart) is answered with the stored reply, not handled."""
    command = change_comment()
    await consumer(deliver(command))
    before = json.loads(json.dumps(collection.docs[ADDRESS], default=str))

    await consumer(deliver(command, channel=object()))

    assert len(handler.calls) == 1
    first, second = (REPLY.validate_json(body) for body, _ in broker.replies)
    assert first == second
    assert json.loads(json.dumps(collection.docs[ADDRESS], default=str)) == before


async def test_reused_message_id_with_another_body_is_rejected(consumer, collection, handler, deliver, broker):
    """Ensure a known message_id carrying a different command is rejected invalid_message and applies nothing."""
    first = change_comment()
    await consumer(deliver(first))
    reused = ChangeQuota(actor_token=TOKEN, address=ADDRESS, quota_mb=5, message_id=first.message_id)

    await consumer(deliver(reused))

    assert len(handler.calls) == 1
    replies = [REPLY.validate_json(body) for body, _ in broker.replies]
    assert replies[1].status == "rejected" and replies[1].code == "invalid_message"
    assert collection.docs[ADDRESS]["version"] == 1 and "quota_mb" not in collection.docs[ADDRESS]


async def test_not_replayable_command_is_handled_on_every_delivery(consumer, collection, handler, deliver):
    """Ensure a command marked not replayable (a sign-in attempt) is handled anew and never recorded."""
    login = Login(login=ADDRESS, password=PASSWORD)

    await consumer(deliver(login))
    await consumer(deliver(login))

    assert len(handler.calls) == 2
    assert "applied" not in collection.docs[ADDRESS]


async def test_internal_command_through_the_commands_exchange_is_refused(consumer, handler, deliver, broker):
    """Ensure an internal command published by a client to `commands` is refused forbidden and set aside."""
    message = deliver(SetFirstAdmin(login="admin"), exchange="commands")

    await consumer(message)

    assert the_reply(broker).code == "forbidden"
    _, kwargs = the_set_aside(broker)
    assert "internal command SetFirstAdmin" in kwargs["headers"][REASON_HEADER]
    assert handler.calls == [] and message.acks == 1


@pytest.mark.parametrize("sender", [None, "mailss-copyjob", "mailss-rules", "mailss-probe"])
async def test_a_client_command_from_a_sender_not_allowed_it_is_refused(consumer, handler, deliver, broker, sender):
    """Ensure a client command is handled only from a sender allowed it (a client, the operator, or a service
    the registry lets send that type): the copy job may send VerifyPassword, never ChangeComment."""
    message = deliver(change_comment(), user_id=sender)

    await consumer(message)

    assert the_reply(broker).code == "forbidden"
    _, kwargs = the_set_aside(broker)
    assert "who may not send it" in kwargs["headers"][REASON_HEADER]
    assert handler.calls == [] and message.acks == 1


def test_who_may_send_what():
    """Ensure clients and the operator may send any client command, a service only what the registry names."""
    from shared.broker_access import may_send

    assert may_send("mailss-mailctl", "ChangePassword") and may_send("mailss-admin", "DeleteAccount")
    assert may_send("mailss-copyjob", "VerifyPassword") and not may_send("mailss-copyjob", "ChangePassword")
    assert not may_send(None, "Login") and not may_send("guest", "Login") and not may_send("mailss-notifier", "Login")


async def test_client_command_through_the_internal_exchange_is_set_aside(consumer, handler, deliver, broker):
    """Ensure only internal commands travel on the internal exchange."""
    await consumer(deliver(change_comment(), exchange="account.internal"))

    the_set_aside(broker)
    assert handler.calls == []


async def test_flush_outbox_relays_what_is_left_and_trims_without_the_handler(consumer, collection, handler, deliver, broker):
    """Ensure FlushOutbox (the sweeper's) relays entries left behind by a cold owner, trims them, and
    never reaches a service handler."""
    await consumer(deliver(change_comment()))
    events_before = len(broker.events)

    await consumer(deliver(FlushOutbox(key=ADDRESS), exchange="account.internal", channel=object()))

    assert len(handler.calls) == 1
    assert len(broker.events) == events_before + 1  # a cold owner cannot know it was published: again
    assert collection.docs[ADDRESS]["outbox"] == []


async def test_flush_outbox_on_a_warm_aggregate_only_trims(consumer, collection, deliver, broker):
    """Ensure a FlushOutbox for an aggregate whose entries this consumer relayed publishes nothing again."""
    await consumer(deliver(change_comment()))

    await consumer(deliver(FlushOutbox(key=ADDRESS), exchange="account.internal"))

    assert len(broker.events) == 1
    assert collection.docs[ADDRESS]["outbox"] == []


INVALID_BODIES = {
    "not json": (b"{this is not json", "body"),
    "missing field": (
        json.dumps({"type": "ChangePassword", "actor_token": TOKEN, "new_password": PASSWORD}).encode(),
        "address",
    ),
    "wrong type": (
        json.dumps({"type": "ChangeQuota", "actor_token": TOKEN, "address": ADDRESS, "quota_mb": "lots"}).encode(),
        "quota_mb",
    ),
}


@pytest.mark.parametrize(("body", "field"), INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
async def test_invalid_body_is_rejected_and_set_aside_redacted(consumer, broker, collection, handler, deliver, body, field):
    """Ensure a body that is not JSON or not the contract is answered invalid_message and set aside redacted."""
    message = deliver(change_comment(), body=body)

    await consumer(message)

    reply = the_reply(broker)
    assert isinstance(reply, Rejected) and reply.code == "invalid_message"
    assert field in [error.field for error in reply.errors]
    assert not any(error.field.startswith(("ChangePassword", "ChangeQuota")) for error in reply.errors)
    dead_body, kwargs = the_set_aside(broker)
    assert kwargs["routing_key"] == consumer.queue
    assert kwargs["headers"][REASON_HEADER].startswith(f"schema: {field}: ")
    assert kwargs["message_id"] == message.raw_message.message_id
    assert kwargs["persist"] and kwargs["mandatory"]
    assert dead_body == redact(body)
    assert TOKEN.encode() not in dead_body and PASSWORD.encode() not in dead_body
    assert message.acks == 1
    assert handler.calls == []
    assert broker.events == [] and collection.docs == {}


@pytest.mark.parametrize("header", ["someone-else@example.jp", None], ids=["other account", "missing"])
async def test_command_keyed_to_another_account_is_set_aside(consumer, broker, collection, handler, deliver, header):
    """Ensure a command whose x-account header is not its own account is set aside, never handled."""
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    headers |= {} if header is None else {ACCOUNT_KEY_HEADER: header}
    message = deliver(change_comment(), headers=headers)

    await consumer(message)

    _, kwargs = the_set_aside(broker)
    assert ACCOUNT_KEY_HEADER in kwargs["headers"][REASON_HEADER]
    assert kwargs["headers"].get(ACCOUNT_KEY_HEADER) == header and "traceparent" not in kwargs["headers"]
    assert handler.calls == []
    assert broker.events == [] and collection.docs == {}
    assert message.acks == 1


@pytest.mark.parametrize(("header", "count", "set_aside"), [
    ("x-delivery-count", 3, False), ("x-delivery-count", 4, True), ("x-delivery-count", 9, True),
    ("x-acquired-count", 3, False), ("x-acquired-count", 4, True),
])
async def test_command_delivered_too_often_is_set_aside(consumer, broker, handler, deliver, header, count, set_aside):
    """Ensure a delivery counted (x-delivery-count, or RabbitMQ 4.3's x-acquired-count, which also counts
    returns on a closed channel) at >= delivery_limit - 1 is set aside unhandled; one below is handled."""
    assert consumer.delivery_limit == 5
    command = change_comment()
    message = deliver(command, headers={ACCOUNT_KEY_HEADER: ADDRESS, header: count})

    await consumer(message)

    assert message.acks == 1
    if set_aside:
        _, kwargs = the_set_aside(broker)
        assert "delivered too often" in kwargs["headers"][REASON_HEADER]
        assert handler.calls == []
    else:
        assert broker.set_aside == [] and handler.calls == [command]


async def test_transient_handler_errors_are_retried_in_place(consumer, broker, handler, deliver):
    """Ensure a handler that fails transiently twice is retried and the command answered and acked once."""
    handler.will(ConnectionError("database away"), TimeoutError("still away"))
    message = deliver(change_comment())

    await consumer(message)

    assert len(handler.calls) == 3
    assert isinstance(the_reply(broker), Accepted)
    assert len(broker.events) == 1
    assert broker.set_aside == []
    assert message.acks == 1


async def test_handler_bug_is_answered_unavailable_and_set_aside(consumer, broker, collection, handler, deliver):
    """Ensure a handler bug gets a rejected `unavailable` reply, is set aside and acked, and writes nothing."""
    handler.will(ValueError("a bug"))
    message = deliver(change_comment())

    await consumer(message)

    assert len(handler.calls) == 1
    reply = the_reply(broker)
    assert isinstance(reply, Rejected) and reply.code == "unavailable"
    dead_body, kwargs = the_set_aside(broker)
    assert kwargs["headers"][REASON_HEADER] == "unhandled ValueError"
    assert TOKEN.encode() not in dead_body
    assert broker.events == [] and collection.docs == {}
    assert message.acks == 1


def fail_event_publish_once(broker) -> None:
    broker.fail(ConnectionError("broker away"), when=lambda body, kwargs: destination(kwargs) == "events")


async def test_transient_relay_error_retries_the_flush_not_the_reply(consumer, broker, handler, deliver, journal):
    """Ensure a transient failure while relaying the outbox retries the relay, never the handler or reply."""
    fail_event_publish_once(broker)
    message = deliver(change_comment())

    await consumer(message)

    assert len(handler.calls) == 1
    assert isinstance(the_reply(broker), Accepted)
    assert len(broker.events) == 1
    assert ("publish failed", "events", "account.account.comment_changed") in journal
    assert message.acks == 1 and journal[-1] == ("publish", "events", "account.account.comment_changed")


async def test_relay_bug_after_the_ack_leaves_the_events_for_the_next_relay(consumer, broker, collection, deliver):
    """Ensure a bug while relaying (after the ack) sets nothing aside and loses nothing: the events stay in
    the outbox and leave with the aggregate's next command, first."""
    broker.fail(KeyError("outbox"), when=lambda body, kwargs: destination(kwargs) == "events")
    message = deliver(change_comment("one"))

    await consumer(message)

    assert isinstance(the_reply(broker), Accepted) and broker.set_aside == [] and message.acks == 1
    assert broker.events == [] and len(collection.docs[ADDRESS]["outbox"]) == 1

    await consumer(deliver(change_comment("two")))

    assert [json.loads(body)["comment"] for body, _ in broker.events] == ["one", "two"]


async def test_transient_error_while_setting_aside_is_retried(consumer, broker, handler, deliver):
    """Ensure a transient broker error on the dead-letter publish is retried before the single ack."""
    broker.fail(ConnectionError("broker away"), when=lambda body, kwargs: kwargs.get("exchange") is not None)
    message = deliver(change_comment(), headers={ACCOUNT_KEY_HEADER: "someone-else@example.jp"})

    await consumer(message)

    the_set_aside(broker)
    assert message.acks == 1 and handler.calls == []


@pytest.mark.parametrize("reply_to", ["", None, "events.audit"], ids=["empty", "none", "not direct reply-to"])
async def test_no_reply_without_reply_to(consumer, broker, deliver, reply_to):
    """Ensure a command sent without reply_to is processed and acked but publishes no reply."""
    message = deliver(change_comment(), reply_to=reply_to)

    await consumer(message)

    assert broker.replies == []
    assert len(broker.events) == 1
    assert message.acks == 1


async def test_database_away_during_the_write_is_waited_out(consumer, broker, collection, handler, deliver):
    """Ensure a write that fails transiently is retried (deciding again from a fresh read) and lands once."""
    collection.fail_next(ConnectionError("database away"))

    await consumer(deliver(change_comment()))

    assert isinstance(the_reply(broker), Accepted)
    assert collection.docs[ADDRESS]["version"] == 1 and len(broker.events) == 1


# Bugs found while writing these tests, now fixed; each states the behaviour it expects.


async def test_deeply_nested_body_is_still_set_aside_and_acked(consumer, broker, handler, deliver):
    """Ensure a body nested too deep to parse is answered, set aside with a placeholder body, and acked."""
    depth = 2000
    message = deliver(change_comment(), body=b'{"a":' * depth + b"1" + b"}" * depth)

    await consumer(message)

    assert the_reply(broker).code == "invalid_message"
    dead_body, _ = the_set_aside(broker)
    assert dead_body == b"<not json; body withheld>"
    assert message.acks == 1 and handler.calls == []


async def test_transient_error_while_answering_an_invalid_message_is_retried(consumer, broker, deliver):
    """Ensure a transient broker error on the invalid_message reply is retried, keeping the code and reason."""
    broker.fail(ConnectionError("broker away"), when=lambda body, kwargs: kwargs.get("exchange") is None)
    message = deliver(change_comment(), body=b"{not json")

    await consumer(message)

    assert the_reply(broker).code == "invalid_message"
    _, kwargs = the_set_aside(broker)
    assert kwargs["headers"][REASON_HEADER].startswith("schema: ")
    assert message.acks == 1


async def test_command_keyed_to_another_account_is_answered(consumer, broker, deliver):
    """Ensure a command set aside for a mismatched x-account header is still answered invalid_message."""
    message = deliver(change_comment(), headers={ACCOUNT_KEY_HEADER: "someone-else@example.jp"})

    await consumer(message)

    reply = the_reply(broker)
    assert isinstance(reply, Rejected) and reply.code == "invalid_message"


async def test_transient_reply_failure_does_not_handle_twice(consumer, broker, handler, deliver):
    """Ensure a reply publish that fails transiently is retried without running the handler again."""
    broker.fail(ConnectionError("broker away"), when=lambda body, kw: kw.get("routing_key", "").startswith("amq.rabbitmq.reply-to."))
    message = deliver(change_comment())

    await consumer(message)

    assert any(step[0] == "publish failed" for step in broker.journal), "the reply never failed"
    assert len(handler.calls) == 1
    assert isinstance(the_reply(broker), Accepted)
    assert message.acks == 1


async def test_delivery_whose_channel_closed_is_left_to_the_broker(consumer, broker, handler, deliver):
    """Ensure a delivery whose channel died while waiting out an outage is neither acked nor set aside."""
    message = deliver(change_comment())
    message.raw_message.channel_open = False
    handler.will(ConnectionError("database away"))

    await consumer(message)

    assert message.acks == 0 and message.nacks == 0
    assert broker.set_aside == []


async def test_handler_that_outlives_its_channel_writes_nothing(consumer, collection, handler, deliver, broker):
    """Ensure a command whose channel closed while its handler ran (a takeover) is neither written,
    answered nor acked: the new owner of the shard gets it again."""
    message = deliver(change_comment())

    async def close_channel_then_accept(command, unit):
        message.raw_message.channel_open = False
        return Accepted(command_id=command.message_id)

    consumer.handlers[ChangeComment] = close_channel_then_accept

    await consumer(message)

    assert collection.docs == {} and broker.replies == [] and message.acks == 0


# Races between the relay after the ack and the shard's next command (found in review).


async def test_entries_confirmed_during_the_next_write_are_published_once(consumer, broker, collection, deliver):
    """Ensure an event whose relay confirms while the aggregate's next write is on its way is not
    published again by the next relay."""
    relay_may_go, write_may_land, relay_started = asyncio.Event(), asyncio.Event(), asyncio.Event()
    publish, update_one = broker.publish, collection.update_one

    async def slow_event_publish(body, **kwargs):
        if destination(kwargs) == "events" and not relay_may_go.is_set():
            relay_started.set()
            await relay_may_go.wait()
        await publish(body, **kwargs)

    async def slow_update(query, update):
        await write_may_land.wait()
        return await update_one(query, update)

    broker.publish, collection.update_one = slow_event_publish, slow_update
    first = asyncio.create_task(consumer(deliver(change_comment("one"))))
    await relay_started.wait()
    second = asyncio.create_task(consumer(deliver(change_comment("two"))))
    await _let_others_run()
    relay_may_go.set()
    await first
    write_may_land.set()
    await second

    ids = [kwargs["message_id"] for _, kwargs in broker.events]
    assert len(ids) == 2 and len(set(ids)) == 2, ids


async def test_a_late_cold_read_never_replaces_a_newer_write(consumer, broker, collection, deliver, aggregates):
    """Ensure a relay's cold read that answers after a newer write of the aggregate does not bring the
    older document back into the cache: no event, applied record or field of the newer write is lost."""
    other, other_relay_started, other_relay_may_go = "z@example.jp", asyncio.Event(), asyncio.Event()
    read_may_answer, slow_read = asyncio.Event(), {"armed": False}
    publish, find_one = broker.publish, collection.find_one

    async def held_publish(body, **kwargs):
        if destination(kwargs) == "events" and not other_relay_may_go.is_set():
            other_relay_started.set()
            await other_relay_may_go.wait()
        await publish(body, **kwargs)

    async def late_find(query):
        if slow_read["armed"]:
            slow_read["armed"] = False
            snapshot = copy.deepcopy(collection.docs.get(query["_id"]))
            await read_may_answer.wait()
            return snapshot
        return await find_one(query)

    aggregates.guarded = False  # as on FerretDB
    broker.publish, collection.find_one = held_publish, late_find
    holder = asyncio.create_task(consumer(deliver(ChangeComment(actor_token=TOKEN, address=other, comment="z"))))
    await other_relay_started.wait()  # the shard's relay is busy: the next relay waits
    first = asyncio.create_task(consumer(deliver(change_comment("one"))))
    await _let_others_run()
    collection.fail_next(ConnectionError("database away"))  # the next write fails: the key is forgotten
    second = asyncio.create_task(consumer(deliver(change_comment("two"))))
    await _let_others_run()
    slow_read["armed"] = True
    other_relay_may_go.set()  # the first command's relay reads the forgotten key, slowly
    await holder
    await asyncio.sleep(0.3)  # meanwhile the second command retries and writes
    read_may_answer.set()
    await first
    await second
    await consumer(deliver(change_comment("three")))

    stored = collection.docs[ADDRESS]
    assert len(stored["applied"]) == 3 and stored["seen"] == 3, stored
    comments = [json.loads(body)["comment"] for body, _ in broker.events if json.loads(body)["address"] == ADDRESS]
    assert comments == ["one", "two", "three"], comments


async def test_a_follow_that_fails_for_good_leaves_the_command_accepted(broker, aggregates, handler, deliver):
    """Ensure a command whose state is written stays accepted, acked and relayed when the outside world
    cannot follow (a full disk): the failure is reported, not turned into `unavailable`."""
    async def disk_full(key, state):
        raise OSError(28, "No space left on device")

    consumer = CommandConsumer(
        queue="account.commands.0", broker=broker, internal_exchange="account.internal",
        parse=command_parser((ChangeComment,)), handlers={ChangeComment: handler}, aggregates=aggregates,
        relay=OutboxRelay(), transient_errors=(ConnectionError,), delivery_limit=5,
        redact=Redactor.for_messages((ChangeComment,)), follow=disk_full,
    )
    message = deliver(change_comment())

    await consumer(message)

    assert isinstance(the_reply(broker), Accepted) and broker.set_aside == []
    assert message.acks == 1 and len(broker.events) == 1


async def _let_others_run() -> None:
    for _ in range(50):
        await asyncio.sleep(0)
