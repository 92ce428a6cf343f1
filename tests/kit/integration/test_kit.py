"""The service kit on the real broker and database, through a small service defined in tests/kit/service."""

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import aio_pika

from shared.client import CommandClient
from shared.contracts.account import AccountCreated, AccountDeleted, PasswordChanged
from shared.health import HealthSettings, check
from tests.kit.service import KIT_SERVICE
from tests.kit.service.contracts import SERVICE, Bump, Enqueue, NoteDeletion, Rename, SlowEffect, Whoami
from tests.support import (
    ServiceProcess,
    close_connections_named,
    consumer_count,
    eventually,
    holds,
    mint,
    new_address,
    publish_event,
    rabbitmqctl,
    stack,
)

TOKEN_SUBJECT = "someone@example.jp"


def counter(kit_db, address: str) -> dict:
    return kit_db["counters"].find_one({"_id": address}) or {}


def queue_depth(vhost: str, queue: str) -> int:
    """Messages ready or unacked in `queue`, as the broker counts them."""
    for line in rabbitmqctl("list_queues", "-p", vhost, "name", "messages").splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    raise AssertionError(f"no queue {queue}")


async def test_event_becomes_its_own_command_once(kit_client, kit_db, issuer, amqp_url, vhost):
    """Ensure an event a service reacts to becomes its own command on the account's aggregate, and an
    event delivered twice acts once."""
    address = new_address()
    token = mint(issuer, TOKEN_SUBJECT)
    assert (await kit_client.request(SERVICE, Bump(actor_token=token, address=address))).status == "accepted"
    event = AccountDeleted(address=address, actor="admin", sessions_valid_from=datetime.now(UTC))

    await publish_event(amqp_url, event)
    await publish_event(amqp_url, event)  # the same event again (same message_id)
    await eventually(lambda: holds(queue_depth(vhost, "kitsvc.events") == 0), what="both deliveries of the event acked")
    reply = await kit_client.request(SERVICE, Bump(actor_token=token, address=address))  # queued behind them

    assert reply.result == {"count": 2}
    stored = counter(kit_db, address)
    assert (stored["count"], stored["deletions"], stored["version"]) == (2, 1, 3)



async def test_news_of_an_earlier_generation_of_the_address_changes_nothing(kit_client, kit_db, issuer, amqp_url, vhost):
    """Ensure an AccountDeleted of an earlier generation, arriving after the address was created again,
    leaves the new generation's derived state alone, while a deletion of the new generation counts."""
    address, token = new_address(), mint(issuer, TOKEN_SUBJECT)
    old_deletion = AccountDeleted(address=address, actor="admin", sessions_valid_from=datetime.now(UTC))
    created = AccountCreated(address=address, plan="kwc", quota_mb=None, comment="", actor="admin",
                             sessions_valid_from=datetime.now(UTC))

    await publish_event(amqp_url, created)
    await eventually(lambda: holds("generation" in counter(kit_db, address)), what="the new generation noted")
    await publish_event(amqp_url, old_deletion)  # late news of the previous owner's deletion
    await eventually(lambda: holds(queue_depth(vhost, "kitsvc.events") == 0), what="the late event handled")
    await kit_client.request(SERVICE, Bump(actor_token=token, address=address))  # behind it in the shard
    assert counter(kit_db, address).get("deletions", 0) == 0

    await publish_event(amqp_url, AccountDeleted(address=address, actor="admin", sessions_valid_from=datetime.now(UTC)))
    await eventually(lambda: holds(counter(kit_db, address).get("deletions") == 1), what="the real deletion noted")


async def test_reused_message_id_with_another_body_is_rejected(kit_client, kit_db, issuer):
    """Ensure a command replayed with an earlier command's message_id but another body is rejected,
    while a true replay is answered as the first time."""
    address, token = new_address(), mint(issuer, TOKEN_SUBJECT)
    first = Rename(actor_token=token, address=address, name="first")
    assert (await kit_client.request(SERVICE, first)).status == "accepted"

    replay = await kit_client.request(SERVICE, first)
    reused = await kit_client.request(SERVICE, Rename(actor_token=token, address=address, name="other",
                                                      message_id=first.message_id))

    assert replay.status == "accepted"
    assert (reused.status, reused.code) == ("rejected", "invalid_message")
    assert counter(kit_db, address)["name"] == "first" and counter(kit_db, address)["version"] == 1


async def test_internal_command_through_commands_is_refused(kit_client, kit_db):
    """Ensure an internal command (no user token) published by a client to `commands` is refused."""
    address = new_address()

    reply = await kit_client.request(SERVICE, NoteDeletion(address=address, deleted_at=datetime.now(UTC)))

    assert (reply.status, reply.code) == ("rejected", "forbidden")
    assert counter(kit_db, address) == {}


async def test_token_issued_before_a_password_change_is_refused_within_a_second(kit_client, issuer, amqp_url):
    """Ensure the test service refuses a token issued before PasswordChanged within 1 s of the event,
    and accepts one issued after."""
    address = new_address()
    old_token = mint(issuer, address)
    assert (await kit_client.request(SERVICE, Whoami(actor_token=old_token, address=address))).status == "accepted"
    changed_at = datetime.now(UTC)

    await publish_event(amqp_url, PasswordChanged(address=address, actor=address, sessions_valid_from=changed_at))
    published = time.monotonic()

    async def refused() -> bool:
        reply = await kit_client.request(SERVICE, Whoami(actor_token=old_token, address=address))
        return reply.status == "rejected" and reply.code == "unauthenticated"

    await eventually(refused, timeout=1.0, what="the old token refused")
    assert time.monotonic() - published <= 1.0
    new_token = mint(issuer, address)
    assert (await kit_client.request(SERVICE, Whoami(actor_token=new_token, address=address))).status == "accepted"


async def test_late_news_of_an_earlier_password_change_does_not_revive_a_session(kit_client, issuer, amqp_url, vhost):
    """Ensure a session limit only moves forward: a PasswordChanged older than the one applied, arriving
    late, does not make an ended session valid again."""
    address = new_address()
    token = mint(issuer, address)
    issued = datetime.now(UTC)
    later, earlier = issued + timedelta(seconds=1), issued - timedelta(seconds=10)

    await publish_event(amqp_url, PasswordChanged(address=address, actor=address, sessions_valid_from=later))
    await eventually(lambda: _refused(kit_client, token, address), what="the token refused")
    await publish_event(amqp_url, PasswordChanged(address=address, actor=address, sessions_valid_from=earlier))
    await eventually(lambda: holds(queue_depth(vhost, "kitsvc.events") == 0), what="the late event handled")

    assert await _refused(kit_client, token, address)  # queued in the shard behind the late limit


async def _refused(kit_client, token: str, address: str) -> bool:
    reply = await kit_client.request(SERVICE, Whoami(actor_token=token, address=address))
    return reply.status == "rejected" and reply.code == "unauthenticated"


async def test_work_items_survive_a_killed_worker_with_each_effect_once(kit_client, kit_service, kit_db, kit_env,
                                                                       amqp_url, instances, issuer):
    """Ensure three competing workers, one SIGKILLed mid-item, record every item's effect exactly once."""
    for name in ("kit-w2", "kit-w3"):
        worker = ServiceProcess(KIT_SERVICE, kit_env, amqp_url, instance=name)
        await worker.start()
        instances.append(worker)
    victim = instances[0]
    reply = await kit_client.request(SERVICE, Enqueue(actor_token=mint(issuer, TOKEN_SUBJECT), address=new_address(),
                                                      count=12, seconds=1.0))
    items = reply.result["items"]

    await eventually(lambda: holds(bool(_unfinished(kit_db, victim.instance, items))), what="the victim mid-item")
    interrupted = _unfinished(kit_db, victim.instance, items)
    await victim.kill()
    await eventually(lambda: holds(kit_db["effects"].count_documents({"_id": {"$in": items}}) == 12),
                     timeout=90, what="every item's effect")

    assert all(kit_db["effects"].count_documents({"_id": item}) == 1 for item in items)
    for item in interrupted:
        deliveries = [d["instance"] for d in kit_db["deliveries"].find({"item": item})]
        assert victim.instance in deliveries and len(deliveries) >= 2, deliveries
        assert kit_db["effects"].find_one({"_id": item})["instance"] != victim.instance


async def test_a_worker_runs_as_many_items_at_once_as_its_prefetch(kit_client, kit_service, kit_db, kit_env,
                                                                   amqp_url, instances, issuer):
    """Ensure a worker with WORK_PREFETCH=3 has several items under way at the same moment, and every
    item still takes effect once."""
    wide = ServiceProcess(KIT_SERVICE, {**kit_env, "WORK_PREFETCH": "3"}, amqp_url, instance="kit-wide")
    await wide.start()
    instances.append(wide)
    reply = await kit_client.request(SERVICE, Enqueue(actor_token=mint(issuer, TOKEN_SUBJECT), address=new_address(),
                                                      count=8, seconds=1.5))
    items = reply.result["items"]

    await eventually(lambda: holds(len(_unfinished(kit_db, wide.instance, items)) >= 2),
                     what="two items under way in one worker at once")
    await eventually(lambda: holds(kit_db["effects"].count_documents({"_id": {"$in": items}}) == 8),
                     timeout=60, what="every item's effect")
    assert all(kit_db["effects"].count_documents({"_id": item}) == 1 for item in items)


async def test_two_copies_of_an_item_taken_by_two_workers_run_once(kit_service, kit_db, kit_env, amqp_url, vhost,
                                                                  instances):
    """Ensure an item that is in its queue twice (a dead worker's delivery handed back beside the
    outbox relaying it again), taken by two workers at the same moment, runs once: the second copy
    waits on the item's lease, then is acked without running."""
    twin = ServiceProcess(KIT_SERVICE, kit_env, amqp_url, instance="kit-twin")
    await twin.start()
    instances.append(twin)
    item = SlowEffect(address=new_address(), seconds=2.0)
    await eventually(lambda: _consumers_are(amqp_url, "kitsvc.work.effects", 2), what="both workers on the queue")

    await publish_work(kit_env["AMQP_URL"], item)
    await eventually(lambda: holds(kit_db["deliveries"].count_documents({"item": str(item.message_id)}) == 1),
                     what="the first copy under way")
    await publish_work(kit_env["AMQP_URL"], item)  # its worker's one slot is taken: the other worker gets it
    await eventually(lambda: holds(kit_db["effects"].count_documents({"_id": str(item.message_id)}) == 1),
                     what="the item's effect")
    await eventually(lambda: holds(queue_depth(vhost, "kitsvc.work.effects") == 0), what="both copies acked")

    ran = [d["instance"] for d in kit_db["deliveries"].find({"item": str(item.message_id)})]
    assert ran in (["kit-a"], ["kit-twin"])
    waited = next(p for p in (kit_service, twin) if p.instance not in ran)
    assert f"work item {item.message_id} was done by another worker" in _log_since_start(waited)
    assert kit_db["work_leases"].find_one({"_id": f"{item.message_id}#0.end"})["state"] == "done"


async def _consumers_are(amqp_url: str, queue: str, count: int) -> bool:
    return await consumer_count(amqp_url, queue) == count


def _log_since_start(process: ServiceProcess) -> str:
    with process.log_path.open() as log:
        log.seek(process.log_start)
        return log.read()


async def publish_work(url: str, item: SlowEffect) -> None:
    """As the service's outbox relay would: persistent, confirmed, on its internal exchange."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{SERVICE}.internal", ensure=False)
        await exchange.publish(aio_pika.Message(
            item.model_dump_json().encode(), message_id=str(item.message_id), content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=f"work.{SlowEffect.QUEUE}", mandatory=True)


def _unfinished(kit_db, instance: str, items: list[str]) -> list[str]:
    started = {d["item"] for d in kit_db["deliveries"].find({"instance": instance, "item": {"$in": items}})}
    done = {e["_id"] for e in kit_db["effects"].find({"_id": {"$in": list(started)}})}
    return sorted(started - done)


async def test_health_fails_without_broker_connection_or_database_and_recovers(kit_service, kit_env):
    """Ensure the health check fails when the service's broker connection is closed and when FerretDB is
    stopped, and passes again after each."""
    settings = HealthSettings(amqp_url=kit_env["AMQP_URL"], instance=kit_service.instance,
                              health_dir=kit_env["HEALTH_DIR"])
    healthy = lambda: _problems_are(settings, False)  # noqa: E731
    failing = lambda: _problems_are(settings, True)  # noqa: E731
    await eventually(healthy, what="healthy at first")

    assert close_connections_named(f"{SERVICE}@{kit_service.instance}") == 1
    await eventually(failing, timeout=5, what="health to fail after close_connection")
    await eventually(healthy, timeout=30, what="health back after the reconnect")

    await asyncio.to_thread(stack, "stop", "ferretdb")
    try:
        await eventually(failing, timeout=10, what="health to fail without the database")
    finally:
        await asyncio.to_thread(stack, "start", "ferretdb")
    await eventually(healthy, timeout=30, what="health back with the database")


async def _problems_are(settings: HealthSettings, present: bool) -> bool:
    return bool(await check(SERVICE, settings)) == present


async def test_takeover_with_a_stale_cached_aggregate_loses_nothing(kit_client, kit_service, kit_db, kit_env,
                                                                   amqp_url, instances, issuer):
    """Ensure a standby that takes over a shard, and the first instance taking it back with a stale cache
    (and a write still in flight from before), lose and overwrite nothing: every bump counts once."""
    standby = ServiceProcess(KIT_SERVICE, kit_env, amqp_url, instance="kit-standby")
    await standby.start()
    instances.append(standby)
    address, token = new_address(), mint(issuer, TOKEN_SUBJECT)
    assert (await kit_client.request(SERVICE, Bump(actor_token=token, address=address))).result == {"count": 1}

    slow = asyncio.ensure_future(kit_client.request(SERVICE, Bump(actor_token=token, address=address, pause_s=3),
                                                   timeout=60))
    await asyncio.sleep(1)  # kit-a is inside the slow bump's turn, its aggregate cached at count 1
    close_connections_named(f"{SERVICE}@{kit_service.instance}")
    assert (await slow).status == "accepted"  # answered by the standby, which took the shard over
    assert (await kit_client.request(SERVICE, Bump(actor_token=token, address=address), timeout=60)).result == {"count": 3}
    await asyncio.sleep(3)  # kit-a's late write of the slow bump has landed or been refused by now
    await standby.kill()
    reply = await kit_client.request(SERVICE, Bump(actor_token=token, address=address), timeout=60)

    assert reply.result == {"count": 4}
    stored = counter(kit_db, address)
    assert stored["count"] == 4 and len(stored["bumped_by"]) == 4, stored
    assert json.dumps(stored["bumped_by"]).count("kit-a") >= 2


__all__ = ["CommandClient"]
