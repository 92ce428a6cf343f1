"""CommandConsumer and OutboxRelay over the hand-written fakes in conftest.py: one delivery becomes
one reply, at most one state change, its events relayed, and exactly one ack."""

import json

import pytest
from pydantic import TypeAdapter

from shared.contracts.account import ChangeComment, CommentChanged
from shared.contracts.base import Accepted, Rejected
from shared.messaging import REASON_HEADER, OutboxRelay, redact
from shared.outbox import to_outbox
from shared.topology import ACCOUNT_KEY_HEADER

ADDRESS = "a@example.jp"
TOKEN = "actor-token-never-leaks"
PASSWORD = "Leaky-Secret-123!"
REPLY = TypeAdapter(Accepted | Rejected)


def change_comment() -> ChangeComment:
    return ChangeComment(actor_token=TOKEN, address=ADDRESS, comment="x")


def the_reply(broker) -> Accepted | Rejected:
    assert len(broker.replies) == 1, broker.replies
    return REPLY.validate_json(broker.replies[0][0])


def the_set_aside(broker) -> tuple[bytes, dict]:
    assert len(broker.set_aside) == 1, broker.set_aside
    return broker.set_aside[0]


def comment_changed_entries(n: int) -> list[dict]:
    return [to_outbox(CommentChanged(address=ADDRESS, comment=f"c{i}", actor=ADDRESS)) for i in range(n)]


async def test_valid_command_is_answered_relayed_and_acked_in_order(
    consumer, broker, store, handler, deliver, journal
):
    """Ensure a valid command is handled once, answered, its outbox relayed and removed, then acked."""
    command = change_comment()
    entries = comment_changed_entries(2)
    store.add(ADDRESS, *entries)
    message = deliver(command)

    await consumer(message)

    assert handler.calls == [command]
    reply = the_reply(broker)
    assert isinstance(reply, Accepted) and reply.command_id == command.message_id
    _, reply_kwargs = broker.replies[0]
    assert reply_kwargs["routing_key"] == message.raw_message.reply_to
    assert reply_kwargs["correlation_id"] == str(command.message_id)
    assert [(body.decode(), kw["routing_key"], kw["message_id"]) for body, kw in broker.events] == [
        (e["body"], e["routing_key"], e["id"]) for e in entries
    ]
    assert all(kw["persist"] and kw["mandatory"] for _, kw in broker.events)
    assert store.removed == [(ADDRESS, [e["id"] for e in entries])]
    assert store.entries[ADDRESS] == []
    assert broker.set_aside == []
    assert message.acks == 1
    assert store.forgotten == [ADDRESS]
    ids = tuple(e["id"] for e in entries)
    assert journal == [
        ("handle", ADDRESS),
        ("publish", "", message.raw_message.reply_to),
        ("pending", ADDRESS),
        ("publish", "events", entries[0]["routing_key"]),
        ("publish", "events", entries[1]["routing_key"]),
        ("remove", ADDRESS, ids),
        ("ack",),
        ("forget", ADDRESS),
    ]


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
async def test_invalid_body_is_rejected_and_set_aside_redacted(
    consumer, broker, store, handler, deliver, body, field
):
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
    assert broker.events == [] and store.forgotten == []


@pytest.mark.parametrize("header", ["someone-else@example.jp", None], ids=["other account", "missing"])
async def test_command_keyed_to_another_account_is_set_aside(consumer, broker, store, handler, deliver, header):
    """Ensure a command whose x-account header is not its own account is set aside, never handled."""
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    headers |= {} if header is None else {ACCOUNT_KEY_HEADER: header}
    message = deliver(change_comment(), headers=headers)

    await consumer(message)

    _, kwargs = the_set_aside(broker)
    assert ACCOUNT_KEY_HEADER in kwargs["headers"][REASON_HEADER]
    assert kwargs["headers"].get(ACCOUNT_KEY_HEADER) == header and "traceparent" not in kwargs["headers"]
    assert handler.calls == []
    assert broker.events == [] and store.removed == []
    assert message.acks == 1


@pytest.mark.parametrize(("count", "set_aside"), [(3, False), (4, True), (9, True)])
async def test_command_delivered_too_often_is_set_aside(consumer, broker, handler, deliver, count, set_aside):
    """Ensure a delivery at x-delivery-count >= delivery_limit - 1 is set aside unhandled; one below is handled."""
    assert consumer.delivery_limit == 5
    command = change_comment()
    message = deliver(command, headers={ACCOUNT_KEY_HEADER: ADDRESS, "x-delivery-count": count})

    await consumer(message)

    assert message.acks == 1
    if set_aside:
        _, kwargs = the_set_aside(broker)
        assert "delivered too often" in kwargs["headers"][REASON_HEADER]
        assert handler.calls == []
    else:
        assert broker.set_aside == [] and handler.calls == [command]


async def test_transient_handler_errors_are_retried_in_place(consumer, broker, store, handler, deliver):
    """Ensure a handler that fails transiently twice is retried and the command answered and acked once."""
    handler.will(ConnectionError("database away"), TimeoutError("still away"))
    store.add(ADDRESS, *comment_changed_entries(1))
    message = deliver(change_comment())

    await consumer(message)

    assert len(handler.calls) == 3
    assert isinstance(the_reply(broker), Accepted)
    assert len(broker.events) == 1
    assert broker.set_aside == []
    assert message.acks == 1


async def test_handler_bug_is_answered_unavailable_and_set_aside(consumer, broker, store, handler, deliver):
    """Ensure a handler bug gets a rejected `unavailable` reply and is set aside, acked and forgotten."""
    handler.will(ValueError("a bug"))
    store.add(ADDRESS, *comment_changed_entries(1))
    message = deliver(change_comment())

    await consumer(message)

    assert len(handler.calls) == 1
    reply = the_reply(broker)
    assert isinstance(reply, Rejected) and reply.code == "unavailable"
    dead_body, kwargs = the_set_aside(broker)
    assert kwargs["headers"][REASON_HEADER] == "unhandled ValueError"
    assert TOKEN.encode() not in dead_body
    assert broker.events == [] and store.removed == []
    assert message.acks == 1
    assert store.forgotten == [ADDRESS]


def fail_store_once(broker, store) -> None:
    store.fail_pending(ConnectionError("database away"))


def fail_event_publish_once(broker, store) -> None:
    broker.fail(ConnectionError("broker away"), when=lambda body, kwargs: kwargs.get("exchange") is not None)


@pytest.mark.parametrize("fail", [fail_store_once, fail_event_publish_once], ids=["store", "event publish"])
async def test_transient_relay_error_retries_the_flush_not_the_reply(
    consumer, broker, store, handler, deliver, journal, fail
):
    """Ensure a transient failure while relaying the outbox retries the flush, never the handler or reply."""
    entries = comment_changed_entries(2)
    store.add(ADDRESS, *entries)
    fail(broker, store)
    message = deliver(change_comment())

    await consumer(message)

    assert len(handler.calls) == 1
    assert isinstance(the_reply(broker), Accepted)
    assert [kw["message_id"] for _, kw in broker.events] == [e["id"] for e in entries]
    assert journal.count(("pending", ADDRESS)) == 2
    assert store.removed == [(ADDRESS, [e["id"] for e in entries])]
    assert message.acks == 1
    assert journal[-2:] == [("ack",), ("forget", ADDRESS)]


async def test_relay_bug_after_the_reply_sets_aside_without_a_second_reply(consumer, broker, store, deliver):
    """Ensure a bug while relaying the outbox sets the command aside but does not answer it twice."""
    store.fail_pending(KeyError("outbox"))
    message = deliver(change_comment())

    await consumer(message)

    assert isinstance(the_reply(broker), Accepted)
    _, kwargs = the_set_aside(broker)
    assert kwargs["headers"][REASON_HEADER] == "unhandled KeyError"
    assert message.acks == 1
    assert store.forgotten == [ADDRESS]


async def test_transient_error_while_setting_aside_is_retried(consumer, broker, handler, deliver):
    """Ensure a transient broker error on the dead-letter publish is retried before the single ack."""
    broker.fail(ConnectionError("broker away"), when=lambda body, kwargs: kwargs.get("exchange") is not None)
    message = deliver(change_comment(), headers={ACCOUNT_KEY_HEADER: "someone-else@example.jp"})

    await consumer(message)

    the_set_aside(broker)
    assert message.acks == 1 and handler.calls == []


@pytest.mark.parametrize("reply_to", ["", None], ids=["empty", "none"])
async def test_no_reply_without_reply_to(consumer, broker, store, deliver, reply_to):
    """Ensure a command sent without reply_to is processed and acked but publishes no reply."""
    store.add(ADDRESS, *comment_changed_entries(1))
    message = deliver(change_comment(), reply_to=reply_to)

    await consumer(message)

    assert broker.replies == []
    assert len(broker.events) == 1
    assert message.acks == 1


async def test_relay_publishes_pending_entries_then_removes_them(store, journal):
    """Ensure OutboxRelay publishes each pending entry in order, then removes exactly those ids."""

    class RecordingPublisher:
        async def publish_entry(self, entry: dict) -> None:
            journal.append(("publish_entry", entry["id"]))

    entries = comment_changed_entries(2)
    store.add(ADDRESS, *entries)
    store.add("other@example.jp", *comment_changed_entries(1))

    await OutboxRelay(store, RecordingPublisher()).flush(ADDRESS)

    ids = tuple(e["id"] for e in entries)
    assert journal == [("pending", ADDRESS), *(("publish_entry", i) for i in ids), ("remove", ADDRESS, ids)]
    assert len(store.entries["other@example.jp"]) == 1


def test_redact_removes_secrets_at_any_depth():
    """Ensure redact blanks every secret field in nested dicts and lists and keeps everything else."""
    body = {
        "type": "CreateAccount", "address": ADDRESS, "actor_token": TOKEN, "initial_password": PASSWORD,
        "nested": {"password": PASSWORD, "keep": 1, "deeper": [{"token": TOKEN, "note": "ok"}, [{"new_password": PASSWORD}]]},
        "sources": [{"source_password": PASSWORD, "host": "imap.example.jp"}],
    }

    redacted = json.loads(redact(json.dumps(body).encode()))

    assert redacted == {
        "type": "CreateAccount", "address": ADDRESS, "actor_token": "[redacted]", "initial_password": "[redacted]",
        "nested": {"password": "[redacted]", "keep": 1,
                   "deeper": [{"token": "[redacted]", "note": "ok"}, [{"new_password": "[redacted]"}]]},
        "sources": [{"source_password": "[redacted]", "host": "imap.example.jp"}],
    }


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe\x00garbage"], ids=["broken", "empty", "not utf-8"])
def test_redact_withholds_a_body_that_is_not_json(body):
    """Ensure a body that is not JSON is replaced by a placeholder, never passed through."""
    assert redact(body) == b"<not json; body withheld>"


def test_redact_keeps_a_body_without_secrets():
    """Ensure a JSON body without secret fields comes back with the same content."""
    body = {"type": "ChangeQuota", "address": ADDRESS, "quota_mb": 5, "list": [1, "two", None, True]}

    assert json.loads(redact(json.dumps(body).encode())) == body


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
    broker.fail(ConnectionError("broker away"), when=lambda body, kwargs: kwargs.get("routing_key") == "reply-queue")
    message = deliver(change_comment(), reply_to="reply-queue")

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
