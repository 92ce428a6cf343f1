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
    import re

    policy = {"pattern": r"^account\.commands\.[0-9]+\.dlq$", "apply-to": "queues", "priority": 99,
              "definition": {"max-length": 1, "overflow": "reject-publish"}}
    address, bad = new_address(), b"this is not json"
    before = {n: await _stat(operator, vhost, f"account.commands.{n}.dlq", "messages") for n in range(4)}
    operator.set_policy(vhost, "test-tiny-dead-letters", policy)
    probes = [ChangeComment(actor_token=admin_token, address=address, comment=str(n)) for n in range(5)]
    held: list[str] = []

    async def refused() -> bool:  # the consumer's own word: which queue holds the message
        log = account_service.log_path.read_text()[account_service.log_start:]
        held[:] = re.findall(r"refuses \S+ \(full\?\): it stays unacked in (\S+) ", log)
        return bool(held)

    try:
        for probe in probes:  # one account, so one shard; a quorum queue may take one or two past its limit
            await client.send(SERVICE, probe, body=bad)
        await eventually(refused, timeout=30, what="the consumer to report the full dead-letter queue")
        shard = held[0]

        async def unacked(count: int) -> bool:  # management statistics lag by up to 5 s
            return operator.queue(vhost, shard).get("messages_unacknowledged") == count

        await eventually(lambda: unacked(1), what="the refused message held unacked")
        assert operator.queue(vhost, f"{shard}.dlq")["messages"] < before[int(shard.rpartition(".")[2])] + len(probes)
    finally:
        operator.delete_policy(vhost, "test-tiny-dead-letters")

    async def all_set_aside() -> bool:
        landed = operator.queue(vhost, f"{shard}.dlq")["messages"] - before[int(shard.rpartition(".")[2])]
        return landed >= len(probes) and await unacked(0)

    await eventually(all_set_aside, timeout=60, what="every message set aside once there is room")


async def test_every_queue_of_a_service_has_a_length_limit(operator, vhost, account_service):
    """Ensure the operator's policies bound the consumed queues and their dead-letter queues (a
    reject-publish overflow without a max length bounds nothing)."""
    from shared.broker_access import DLQ_MAX_LENGTH, QUEUE_MAX_LENGTH

    for name, limit in (("account.commands.0", QUEUE_MAX_LENGTH), ("account.commands.0.dlq", DLQ_MAX_LENGTH),
                        ("account.work.homes", QUEUE_MAX_LENGTH), ("account.work.homes.dlq", DLQ_MAX_LENGTH)):
        applied = await _stat(operator, vhost, name, "effective_policy_definition")
        assert applied.get("max-length") == limit, (name, applied)
        assert name.endswith(".dlq") is (applied.get("overflow") == "reject-publish"), (name, applied)


async def _stat(operator, vhost: str, queue: str, key: str):
    """A field of the management API's view of a queue, once it has one: statistics and applied
    policies appear a few seconds after the queue (the management agent's collection interval)."""
    found: dict = {}

    async def present() -> bool:
        found.update(await asyncio.to_thread(operator.queue, vhost, queue))
        return bool(found.get(key)) or found.get(key) == 0

    await eventually(present, timeout=30, what=f"{key} of {queue} in the management API")
    return found[key]
