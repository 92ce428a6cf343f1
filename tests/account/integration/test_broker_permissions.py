"""Each broker user can do what its role needs and the broker refuses the rest (shared/broker_access.py)."""

import asyncio
import json
from collections.abc import Awaitable, Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import AMQPError

from shared.broker_access import HEALTH
from shared.contracts.account import SERVICE
from tests.kit.service import KIT_SERVICE

Attempt = Callable[[AbstractChannel], Awaitable[object]]


async def _publish(channel: AbstractChannel, exchange: str, routing_key: str) -> None:
    target = channel.default_exchange if exchange == "" else await channel.get_exchange(exchange, ensure=False)
    await target.publish(aio_pika.Message(json.dumps({"type": "Probe"}).encode()), routing_key=routing_key)


async def _spy_on(channel: AbstractChannel, exchange: str, routing_key: str) -> None:
    """Bind a queue of one's own to `exchange`: reading what flows there."""
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=routing_key)


async def _consume(channel: AbstractChannel, queue: str) -> None:
    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        pass

    await (await channel.get_queue(queue, ensure=False)).consume(ignore)


async def _delete_exchange(channel: AbstractChannel, exchange: str) -> None:
    await channel.exchange_delete(exchange)


REFUSED: dict[str, dict[str, Attempt]] = {
    "mailctl": {
        "read account commands": lambda ch: _spy_on(ch, "commands", SERVICE),
        "consume a shard": lambda ch: _consume(ch, "account.commands.0"),
        "publish an event": lambda ch: _publish(ch, "events", "account.account.deleted"),
        "send an internal command": lambda ch: _publish(ch, "account.internal", SERVICE),
        "publish through the default exchange": lambda ch: _publish(ch, "", "account.commands.0"),
    },
    SERVICE: {
        "read its own commands' exchange from commands": lambda ch: _spy_on(ch, "commands", SERVICE),
        "publish another service's events": lambda ch: _publish(ch, "events", f"{KIT_SERVICE.name}.thing.done"),
        "read events (it reacts to none)": lambda ch: _spy_on(ch, "events", "#"),
        "send commands (it is nobody's client)": lambda ch: _publish(ch, "commands", KIT_SERVICE.name),
        "consume another service's queue": lambda ch: _consume(ch, f"{KIT_SERVICE.name}.commands.0"),
        "send another service's internal commands": lambda ch: _publish(ch, f"{KIT_SERVICE.name}.internal", "x"),
        "delete a shared exchange": lambda ch: _delete_exchange(ch, "commands"),
    },
    KIT_SERVICE.name: {
        "read account commands": lambda ch: _spy_on(ch, "commands", SERVICE),
        "read events it does not react to": lambda ch: _spy_on(ch, "events", "#"),
        "consume the account service's queue": lambda ch: _consume(ch, "account.commands.0"),
        "read account dead letters": lambda ch: _consume(ch, "account.commands.0.dlq"),
    },
    HEALTH: {
        "publish a command": lambda ch: _publish(ch, "commands", SERVICE),
        "consume a shard": lambda ch: _consume(ch, "account.commands.0"),
    },
}


async def _refused(url: str, attempt: Attempt) -> bool:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        try:
            await asyncio.wait_for(attempt(channel), 10)
        except AMQPError as error:
            return "ACCESS_REFUSED" in str(error)
        return False
    finally:
        await connection.close()


@pytest.mark.parametrize(("principal", "what"), [(p, w) for p, attempts in REFUSED.items() for w in attempts])
async def test_the_broker_refuses_what_a_user_must_not_do(operator, vhost, account_service, principal, what):
    """Ensure each user's least privilege holds at the broker itself."""
    assert await _refused(operator.url(principal, vhost), REFUSED[principal][what]), f"{principal} may {what}"


async def test_guest_is_gone(operator):
    """Ensure the broker has no guest user (it was administrator of everything)."""
    url = operator.url(HEALTH).replace(f"mailss-{HEALTH}:{operator.password(HEALTH)}", "guest:guest")
    connection = aio_pika.Connection(url)
    try:
        with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
            await connection.connect()
    finally:
        await connection.close()  # else a refused connection's garbage collection schedules its close unawaited


async def test_a_service_sends_another_only_the_commands_the_registry_names(operator, vhost, admin_token, account_service):
    """Ensure the copy job's user, whose token-carrying requests the account service would otherwise obey, may
    send it VerifyPassword and nothing else: a ChangeComment with a valid admin token is refused forbidden.
    And nobody can name another sender: RabbitMQ refuses a user_id that is not the connection's user."""
    from shared.client import CommandClient
    from shared.contracts.account import ChangeComment, VerifyPassword

    copyjob = await CommandClient.connect(operator.url("copyjob", vhost))
    try:
        allowed = await copyjob.request(SERVICE, VerifyPassword(actor_token=admin_token, address="nobody@example.jp",
                                                                password="Wrong-Passw0rd!"))
        refused = await copyjob.request(SERVICE, ChangeComment(actor_token=admin_token, address="nobody@example.jp",
                                                               comment="taken over"))
    finally:
        await copyjob.close()
    assert "this sender may not send" not in allowed.message  # the account service's own rules decided it
    assert (refused.code, refused.message) == ("forbidden", "this sender may not send ChangeComment")

    posing = CommandClient(await aio_pika.connect_robust(operator.url("copyjob", vhost)), user="mailss-mailctl")
    try:
        with pytest.raises((AMQPError, asyncio.TimeoutError)):
            await posing.request(SERVICE, ChangeComment(actor_token=admin_token, address="x@example.jp", comment="x"),
                                 timeout=5)
    finally:
        await posing.close()
