"""Benchmark: ChangePassword through the real broker vs a bare aio-pika request/reply echo.

Both run in the same session on the same RabbitMQ, each through a durable quorum queue with
persistent, mandatory, confirmed publishing and direct reply-to. Open-loop at a fixed offered
load (requests are sent on a schedule, not when the previous reply arrives), plus a sequential
run. Prints throughput, p50/p99 reply latency, the argon2 parameters, the time of one hash and
the ratio of ChangePassword latency minus one hash over the echo latency.

    export MAILSS_STACK=test && scripts/stack.sh up && eval "$(scripts/stack.sh env)" && .venv/bin/python bench/change_password.py
"""

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

import aio_pika
from aiormq import spec
from argon2 import PasswordHasher

from services.account.adapters.argon2_hasher import Argon2Hasher
from services.account.settings import AccountSettings
from shared.auth import generate_keypair
from shared.broker_access import ADMIN, Broker
from shared.client import CommandClient
from shared.contracts.account import SERVICE, ChangeComment, ChangePassword, CreateAccount, Login
from shared.messaging.broker import make_broker, subscribe
from shared.messaging.delivery import channel_of
from shared.registry import SERVICES
from shared.topology import DIRECT_REPLY_TO
from tests.support import ServiceProcess

ECHO_QUEUE = "bench.echo"
FASTSTREAM_ECHO_QUEUE = "bench.faststream-echo"
PASSWORDS = ("Bench-Passw0rd-A!", "Bench-Passw0rd-B!")
BENCH_ADMIN_PASSWORD = "Bench-Admin-Passw0rd!"


class EchoServer:
    """The floor: consume from a quorum queue and reply at once."""

    async def start(self, url: str, prefetch: int) -> None:
        self.connection = await aio_pika.connect_robust(url)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(ECHO_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        self.exchange = channel.default_exchange
        await queue.consume(self.on_message)

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await self.exchange.publish(
            aio_pika.Message(message.body, correlation_id=message.correlation_id), routing_key=message.reply_to)
        await message.ack()


class FastStreamEcho:
    """The same echo through the kit's broker factory and subscriber (FastStream, telemetry middleware,
    manual ack, reply on the delivering channel): what the framework costs before any service code."""

    async def start(self, url: str) -> None:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(FASTSTREAM_ECHO_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        self.broker = make_broker(url, app_id="bench", connection_name="bench-echo", tracer_provider=None)
        subscribe(self.broker, FASTSTREAM_ECHO_QUEUE, prefetch=1, consume=self.on_message)
        await self.broker.start()

    async def on_message(self, message) -> None:
        raw = message.raw_message
        await channel_of(message).basic_publish(
            message.body, routing_key=raw.reply_to, properties=spec.Basic.Properties(correlation_id=raw.correlation_id))
        await message.ack()


class EchoClient:
    async def start(self, url: str) -> None:
        self.connection = await aio_pika.connect_robust(url)
        self.channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self.waiting: dict[str, asyncio.Future[bytes]] = {}
        reply_queue = await self.channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await reply_queue.consume(self.on_reply, no_ack=True)

    async def on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if future := self.waiting.pop(message.correlation_id or "", None):
            future.set_result(message.body)

    async def request(self, queue: str = ECHO_QUEUE) -> None:
        correlation_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self.waiting[correlation_id] = future
        await self.channel.default_exchange.publish(
            aio_pika.Message(b'{"echo": true}', correlation_id=correlation_id, reply_to=DIRECT_REPLY_TO,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue, mandatory=True)
        await future


async def open_loop(request: Callable[[], Awaitable[None]], *, rate: float, seconds: float) -> tuple[list[float], float]:
    """Start one request every 1/rate s regardless of replies; return latencies and wall time."""
    latencies: list[float] = []

    async def timed() -> None:
        started = time.perf_counter()
        await request()
        latencies.append(time.perf_counter() - started)

    begin, count = time.perf_counter(), int(rate * seconds)
    tasks = []
    for n in range(count):
        await asyncio.sleep(max(0.0, begin + n / rate - time.perf_counter()))
        tasks.append(asyncio.ensure_future(timed()))
    await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - begin


async def sequential(request: Callable[[], Awaitable[None]], count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        await request()
        latencies.append(time.perf_counter() - started)
    return latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000 if len(values) > 1 else values[0] * 1000


def line(name: str, latencies: list[float], wall: float | None = None) -> str:
    rate = f"{len(latencies) / wall:7.1f} req/s" if wall else " " * 13
    return f"{name:<34} n={len(latencies):4d} {rate}  p50={pct(latencies, 50):7.2f} ms  p99={pct(latencies, 99):7.2f} ms"


class PasswordChanger:
    """An admin changes passwords round-robin (a user's own session ends with its password change)."""

    def __init__(self, client: CommandClient, admin_token: str, addresses: list[str]) -> None:
        self.client, self.admin_token, self.addresses, self.turn = client, admin_token, addresses, 0

    async def request(self) -> None:
        self.turn += 1
        address = self.addresses[self.turn % len(self.addresses)]
        password = PASSWORDS[(self.turn // len(self.addresses)) % 2]
        reply = await self.client.request(SERVICE, ChangePassword(
            actor_token=self.admin_token, address=address, new_password=password))
        assert reply.status == "accepted", reply


class CommentChanger(PasswordChanger):
    """The same command path without hashing or a Dovecot write: what the path itself costs."""

    async def request(self) -> None:
        self.turn += 1
        address = self.addresses[self.turn % len(self.addresses)]
        reply = await self.client.request(SERVICE, ChangeComment(
            actor_token=self.admin_token, address=address, comment=f"bench {self.turn}"))
        assert reply.status == "accepted", reply


async def setup_accounts(client: CommandClient, admin_token: str, count: int) -> list[str]:
    addresses = [f"bench{uuid.uuid4().hex[:8]}@example.jp" for _ in range(count)]
    for address in addresses:
        reply = await client.request(SERVICE, CreateAccount(actor_token=admin_token, address=address, plan="kwc",
                                                            initial_password=PASSWORDS[1]))
        assert reply.status == "accepted", reply
    return addresses


async def main(args: argparse.Namespace) -> None:
    vhost = f"mailss-bench-{uuid.uuid4().hex[:6]}"
    operator = Broker.from_env()
    await asyncio.to_thread(operator.add_vhost, vhost)
    await operator.provision_async(vhost)
    url = operator.url(ADMIN, vhost)
    private, public = generate_keypair()
    env = {**os.environ, "AMQP_URL": operator.url(SERVICE, vhost), "MONGODB_DB": f"mailss_bench_{uuid.uuid4().hex[:6]}",
           "SESSION_PRIVATE_KEY": private, "SESSION_PUBLIC_KEY": public, "OTEL_EXPORTER": "none",
           "BOOTSTRAP_ADMIN_LOGIN": "benchadmin", "BOOTSTRAP_ADMIN_PASSWORD": BENCH_ADMIN_PASSWORD,
           "BOOTSTRAP_ADMIN_DOMAINS": '["example.jp"]'}
    service = ServiceProcess(SERVICES["account"], env, url, instance="bench-account")
    fields = AccountSettings.model_fields
    hasher = Argon2Hasher(PasswordHasher(time_cost=fields["argon2_time_cost"].default,
                                         memory_cost=fields["argon2_memory_kib"].default,
                                         parallelism=fields["argon2_parallelism"].default))
    try:
        await service.start()
        echo_server, echo_client = EchoServer(), EchoClient()
        await echo_server.start(url, prefetch=4)
        await echo_client.start(url)
        faststream_echo = FastStreamEcho()
        await faststream_echo.start(url)
        client = await CommandClient.connect(operator.url("mailctl", vhost))
        admin = (await client.request(SERVICE, Login(login="benchadmin", password=BENCH_ADMIN_PASSWORD))).result["token"]
        addresses = await setup_accounts(client, admin, args.accounts)
        changer, commenter = PasswordChanger(client, admin, addresses), CommentChanger(client, admin, addresses)
        one_hash = min([await _time_hash(hasher) for _ in range(5)])
        await sequential(echo_client.request, 20)  # warm-up
        await sequential(changer.request, 5)
        echo_seq = await sequential(echo_client.request, args.sequential)
        cp_seq = await sequential(changer.request, args.sequential)
        comment_seq = await sequential(commenter.request, args.sequential)
        echo_open, echo_wall = await open_loop(echo_client.request, rate=args.rate, seconds=args.seconds)
        cp_open, cp_wall = await open_loop(changer.request, rate=args.rate, seconds=args.seconds)
        report(args, hasher, one_hash, echo_seq, cp_seq, (echo_open, echo_wall), (cp_open, cp_wall))
        print(line("ChangeComment, sequential", comment_seq))
        print(f"ratio sequential p50 ChangeComment/echo = {pct(comment_seq, 50) / pct(echo_seq, 50):5.2f}x  "
              "(the command path: token, write, reply, outbox relay; no hash, no Dovecot write)")
        await interleaved(echo_client.request, commenter.request, blocks=args.blocks)
        await interleaved(echo_client.request, partial(echo_client.request, FASTSTREAM_ECHO_QUEUE),
                          blocks=args.blocks, label="FastStream echo")
        await faststream_echo.broker.stop()
        await client.close()
        await echo_client.connection.close()
        await echo_server.connection.close()
    finally:
        await service.stop()
        operator.delete_vhost(vhost)


async def interleaved(echo: Callable[[], Awaitable[None]], command: Callable[[], Awaitable[None]], *,
                      blocks: int, per_block: int = 40, label: str = "ChangeComment") -> None:
    """Alternate short blocks of echo and ChangeComment so both see the same moment of a shared, noisy
    machine; the ratio is taken per block pair, then its median."""
    ratios, echoes, commands = [], [], []
    for _ in range(blocks):
        e, c = await sequential(echo, per_block), await sequential(command, per_block)
        echoes += e
        commands += c
        ratios.append(pct(c, 50) / pct(e, 50))
    print(line("echo, interleaved blocks", echoes))
    print(line(f"{label}, interleaved blocks", commands))
    print(f"ratio {label}/echo, median of {blocks} block pairs = {statistics.median(ratios):5.2f}x "
          f"(blocks from {min(ratios):.2f}x to {max(ratios):.2f}x; goal <= 3x)")


async def _time_hash(hasher: Argon2Hasher) -> float:
    started = time.perf_counter()
    await hasher.hash("Bench-Passw0rd-A!")
    return time.perf_counter() - started


def report(args, hasher, one_hash, echo_seq, cp_seq, echo_open, cp_open) -> None:
    print(f"argon2: {hasher.parameters}; one hash = {one_hash * 1000:.1f} ms")
    print(f"shards={os.environ.get('COMMAND_SHARDS', '4')} accounts={args.accounts} offered load={args.rate}/s for {args.seconds}s")
    print(line("echo, sequential", echo_seq))
    print(line("ChangePassword, sequential", cp_seq))
    print(line(f"echo, open loop {args.rate}/s", *echo_open))
    print(line(f"ChangePassword, open loop {args.rate}/s", *cp_open))
    for label, echo, cp in (("sequential", echo_seq, cp_seq), ("open loop", echo_open[0], cp_open[0])):
        e50, c50 = pct(echo, 50), pct(cp, 50)
        print(f"ratio {label:<10} p50 ChangePassword/echo = {c50 / e50:5.2f}x; "
              f"excluding one hash = {(c50 - one_hash * 1000) / e50:5.2f}x  (goal < 3x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=8.0, help="offered requests per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--sequential", type=int, default=60)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=15, help="interleaved echo/ChangeComment block pairs")
    asyncio.run(main(parser.parse_args()))
