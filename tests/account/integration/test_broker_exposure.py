"""What reaches a service through the broker is bounded and answered only where it should be."""

import asyncio
import json

import aio_pika

from shared.contracts.account import SERVICE, ChangeComment
from shared.messaging.redaction import MAX_BODY_BYTES
from tests.support import eventually, new_address


async def test_a_body_over_the_limit_is_refused_unread_and_set_aside_small(client, admin_token, amqp_url):
    """Ensure a command larger than the limit is answered invalid_message/too_large without being parsed,
    and its dead-letter copy is bounded (a redacted copy of many short values could grow)."""
    from tests.account.integration.test_account_service import dead_lettered

    probe = ChangeComment(actor_token=admin_token, address=new_address(), comment="x")
    huge = json.dumps({"type": "ChangeComment", "values": [1] * (MAX_BODY_BYTES // 2)}).encode()

    reply = await client.request(SERVICE, probe, body=huge)

    assert (reply.status, reply.code, reply.errors[0].code) == ("rejected", "invalid_message", "too_large")
    [copy] = await dead_lettered(amqp_url, str(probe.message_id), what="the oversized command set aside")
    assert len(copy.body) < 100 and "over the limit" in copy.headers["x-death-reason"]


async def test_the_broker_refuses_a_message_far_over_the_limit(amqp_url):
    """Ensure RabbitMQ itself refuses what no service would read (max_message_size)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange("commands", ensure=False)
        refused = False
        try:
            await exchange.publish(aio_pika.Message(b"x" * (4 * MAX_BODY_BYTES + 1)), routing_key=SERVICE)
        except aio_pika.exceptions.AMQPError:
            refused = True
        assert refused
    finally:
        await connection.close()


async def test_replies_go_only_to_direct_reply_to(client, admin_token, amqp_url):
    """Ensure a command naming an ordinary queue as reply_to gets no reply published there, and is
    still handled."""
    address = new_address()
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        trap = await channel.declare_queue(exclusive=True)
        from tests.account.integration.test_account_service import create

        await create(client, admin_token, address)
        probe = ChangeComment(actor_token=admin_token, address=address, comment="via a trap")
        await client.send(SERVICE, probe, reply_to=trap.name)
        await asyncio.sleep(0)

        async def applied() -> bool:
            again = await client.request(SERVICE, probe)  # the same id: answered from the replay record
            return again.status == "accepted"

        await eventually(applied, what="the command handled")
        looked = await channel.declare_queue(trap.name, passive=True)
        assert looked.declaration_result.message_count == 0
    finally:
        await connection.close()


async def test_a_full_dead_letter_queue_keeps_the_message_unacked_and_says_so(client, admin_token, operator, vhost,
                                                                              account_service):
    """Ensure that when a dead-letter queue refuses what is set aside, the consumer keeps the message
    (unacked, not requeued in a loop), logs an error, and moves it once there is room."""
    policy = {"pattern": r"^account\.commands\.[0-9]+\.dlq$", "apply-to": "queues", "priority": 99,
              "definition": {"max-length": 1, "overflow": "reject-publish"}}
    address, bad = new_address(), b"this is not json"
    operator.set_policy(vhost, "test-tiny-dead-letters", policy)
    probes = [ChangeComment(actor_token=admin_token, address=address, comment=str(n)) for n in range(3)]
    shard = None
    try:
        for probe in probes:  # one account, so one shard; a quorum queue takes one past its limit
            await client.send(SERVICE, probe, body=bad)

        async def stuck() -> bool:
            nonlocal shard
            for n in range(4):
                info = operator.queue(vhost, f"account.commands.{n}")
                if info.get("messages_unacknowledged"):
                    shard = info["name"]
                    return True
            return False

        await eventually(stuck, what="a set-aside message held unacked")
        await asyncio.sleep(2)
        assert operator.queue(vhost, shard)["messages_unacknowledged"] == 1
        assert operator.queue(vhost, f"{shard}.dlq")["messages"] <= 2
        assert "refuses" in account_service.log_path.read_text()[account_service.log_start:]
    finally:
        operator.delete_policy(vhost, "test-tiny-dead-letters")

    async def moved() -> bool:
        return operator.queue(vhost, shard)["messages_unacknowledged"] == 0 if shard else True

    await eventually(moved, timeout=40, what="the held message set aside once there is room")


async def test_every_queue_of_a_service_has_a_length_limit(operator, vhost, account_service):
    """Ensure the operator's policies bound the consumed queues and their dead-letter queues (a
    reject-publish overflow without a max length bounds nothing)."""
    from shared.broker_access import DLQ_MAX_LENGTH, QUEUE_MAX_LENGTH

    for name, limit in (("account.commands.0", QUEUE_MAX_LENGTH), ("account.commands.0.dlq", DLQ_MAX_LENGTH),
                        ("account.work.homes", QUEUE_MAX_LENGTH), ("account.work.homes.dlq", DLQ_MAX_LENGTH)):
        applied = operator.queue(vhost, name).get("effective_policy_definition") or {}
        assert applied.get("max-length") == limit, (name, applied)
        assert name.endswith(".dlq") is (applied.get("overflow") == "reject-publish"), (name, applied)
