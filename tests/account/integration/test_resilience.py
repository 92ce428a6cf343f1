"""Kill, restart and flood: nothing accepted is lost, duplicated or applied out of order."""

import asyncio
import subprocess
from functools import partial

import pytest

from shared.client import CommandClient
from shared.contracts.account import SERVICE, ChangeComment, CreateAccount, Login
from tests.support import consumer_count, eventually, new_address, rabbitmqctl, stack, stack_env

STRONG = "Strong-Passw0rd!"


async def _send_creates(amqp_url: str, token: str, addresses: list[str]) -> None:
    """Publish with confirms and no reply-to: once this returns the broker has accepted them."""
    sender = await CommandClient.connect(amqp_url)
    try:
        for address in addresses:
            await sender.send(SERVICE, CreateAccount(actor_token=token, address=address, plan="kwc", initial_password=STRONG))
    finally:
        await sender.close()


async def _can_log_in(amqp_url: str, address: str) -> bool:
    client = await CommandClient.connect(amqp_url)
    try:
        return (await client.request(SERVICE, Login(login=address, password=STRONG), timeout=20)).status == "accepted"
    finally:
        await client.close()


def _stop_and_start_app() -> None:
    rabbitmqctl("stop_app")
    rabbitmqctl("start_app")


def _restart_process() -> None:
    """Stopped as scripts/stop.sh stops it: the node is gone from epmd (which outlives it, and goes too
    unless another stack's node still uses it)."""
    stack("stop", "rabbitmq")
    names = subprocess.run(["epmd", "-names"], capture_output=True, text=True).stdout
    assert f"name {stack_env('RABBITMQ_NODENAME').partition('@')[0]} " not in names, names
    stack("start", "rabbitmq")


@pytest.mark.parametrize("restart", [_stop_and_start_app, _restart_process], ids=["stop_app-start_app", "process"])
async def test_rabbitmq_restart_loses_no_accepted_command(admin_token, amqp_url, account_service, restart):
    """Ensure after a RabbitMQ restart the service consumes again, unrestarted, and every confirmed command is applied."""
    before, after = [new_address() for _ in range(15)], [new_address() for _ in range(15)]
    await _send_creates(amqp_url, admin_token, before)
    await asyncio.to_thread(restart)
    await eventually(lambda: _consumed(amqp_url), timeout=60, what="the service to consume again")
    await _send_creates(amqp_url, admin_token, after)
    for address in before + after:
        await eventually(partial(_can_log_in, amqp_url, address), timeout=60, what=f"{address} to exist")
    assert account_service.process.returncode is None


async def _consumed(amqp_url: str) -> bool:
    counts = [await consumer_count(amqp_url, f"account.commands.{n}") for n in range(4)]
    return all(counts)


async def test_ferretdb_restart_is_survived_without_service_restart(client, admin_token, account_service):
    """Ensure a command sent while FerretDB is down is applied once it is back, by the same service process."""
    pid = account_service.process.pid
    address = new_address()
    reply = await client.request(SERVICE, CreateAccount(actor_token=admin_token, address=address, plan="kwc", initial_password=STRONG))
    assert reply.status == "accepted"
    await asyncio.to_thread(stack, "stop", "ferretdb")
    try:
        pending = asyncio.ensure_future(client.request(
            SERVICE, ChangeComment(actor_token=admin_token, address=address, comment="during outage"), timeout=90))
        await asyncio.sleep(3)  # the outage itself: the command must wait it out, not fail
        assert not pending.done()
    finally:
        await asyncio.to_thread(stack, "start", "ferretdb")
    reply = await pending
    assert reply.status == "accepted", reply
    assert account_service.process.pid == pid and account_service.process.returncode is None


async def test_killed_service_loses_and_reorders_nothing(client, admin_token, amqp_url, account_service, events):
    """Ensure a flood of commands for one account survives a SIGKILL mid-way: each applied once, in order."""
    address = new_address()
    reply = await client.request(SERVICE, CreateAccount(actor_token=admin_token, address=address, plan="kwc", initial_password=STRONG))
    assert reply.status == "accepted"
    count = 150
    sender = await CommandClient.connect(amqp_url)
    for n in range(count):
        await sender.send(SERVICE, ChangeComment(actor_token=admin_token, address=address, comment=f"c{n}"))
    await sender.close()
    await eventually(lambda: _seen(events, address, 10), what="some comments applied")
    await account_service.kill()
    assert not await _seen(events, address, count), "the kill came too late to test anything"
    await account_service.start()
    await eventually(lambda: _seen(events, address, count), timeout=120, what="every comment applied")
    changed = events.of_type("CommentChanged", address=address)
    first_seen = list(dict.fromkeys(event["comment"] for event in changed))
    assert first_seen == [f"c{n}" for n in range(count)]
    ids_per_comment = {}
    for event in changed:
        ids_per_comment.setdefault(event["comment"], set()).add(event["message_id"])
    assert all(len(ids) == 1 for ids in ids_per_comment.values()), "a command was applied twice"


async def _seen(events, address: str, at_least: int) -> bool:
    return len({e["comment"] for e in events.of_type("CommentChanged", address=address)}) >= at_least


async def test_left_behind_outbox_is_relayed_by_the_sweeper(client, admin_token, service_env, events):
    """Ensure an event left in an outbox (its relay failed for good, under an earlier owner of the shard)
    is still published, by the sweeper."""
    from datetime import UTC, datetime, timedelta

    from shared.contracts.account import CommentChanged
    from shared.messaging.outbox import event_entry
    from shared.mongo import make_client

    address = new_address()
    reply = await client.request(SERVICE, CreateAccount(actor_token=admin_token, address=address, plan="kwc", initial_password=STRONG))
    assert reply.status == "accepted"
    stranded = {**event_entry(CommentChanged(address=address, comment="stranded", actor="test")),
                "at": datetime.now(UTC) - timedelta(minutes=2)}
    mongo = make_client(service_env["MONGODB_URL"])
    written_elsewhere = {"$set": {"outbox": [stranded]}, "$inc": {"version": 1}}
    await mongo[service_env["MONGODB_DB"]]["accounts"].update_one({"_id": address}, written_elsewhere)
    await mongo.close()
    await eventually(lambda: _stranded_seen(events, address), timeout=30, what="the stranded event published")


async def _stranded_seen(events, address: str) -> bool:
    return bool(events.of_type("CommentChanged", address=address, comment="stranded"))


async def test_standby_instance_takes_over_when_the_active_one_dies(client, admin_token, service_env, amqp_url, account_service):
    """Ensure a second instance waits as single-active standby and serves every shard once the first is killed."""
    from shared.registry import SERVICES
    from tests.support import ServiceProcess

    standby = ServiceProcess(SERVICES["account"], service_env, amqp_url, instance="test-account-standby")
    await standby.start()
    try:
        await account_service.kill()
        addresses = [new_address() for _ in range(8)]
        for address in addresses:
            reply = await client.request(SERVICE, CreateAccount(
                actor_token=admin_token, address=address, plan="kwc", initial_password=STRONG), timeout=60)
            assert reply.status == "accepted", reply
    finally:
        await account_service.start()
        await standby.stop()
    assert not standby.programming_errors()
