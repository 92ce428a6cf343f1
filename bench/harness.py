"""What the rules benchmarks share: the account and rules services started in a vhost of their own
against the running stack, an admin session, accounts the rules service knows, and a tap on the
RulesApplied events; plus percentiles printed the same way."""

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika

from shared.auth import generate_keypair
from shared.broker_access import ADMIN, Broker
from shared.client import CommandClient
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount, Login
from shared.contracts.rules import SERVICE as RULES
from shared.contracts.rules import GetRules, RulesCommand
from shared.registry import SERVICES
from tests.support import ServiceProcess

ADMIN_PASSWORD = "Bench-admin-passw0rd!"
PASSWORD = "Bench-Passw0rd-1!"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(label: str, values: list[float], extra: str = "") -> str:
    return f"{label:<44} n={len(values):>5}  p50={pct(values, 50):8.2f} ms  p99={pct(values, 99):8.2f} ms{extra}"


class AppliedTap:
    """RulesApplied events as they arrive: per address, (version, when)."""

    def __init__(self) -> None:
        self.applied: dict[str, list[tuple[int, float]]] = {}
        self.connection: aio_pika.abc.AbstractConnection | None = None

    async def open(self, url: str) -> None:
        self.connection = await aio_pika.connect(url)
        channel = await self.connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind("events", routing_key="rules.rules.applied")
        await queue.consume(self._on, no_ack=True)

    async def _on(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = json.loads(message.body)
        self.applied.setdefault(event["address"], []).append((event["version"], time.perf_counter()))

    async def close(self) -> None:
        if self.connection:
            await self.connection.close()

    def when(self, address: str, version: int) -> float | None:
        times = [at for v, at in self.applied.get(address, []) if v >= version]
        return min(times) if times else None

    async def wait(self, address: str, version: int) -> float:
        while (at := self.when(address, version)) is None:
            await asyncio.sleep(0.001)
        return at


@dataclass
class Bench:
    client: CommandClient
    admin: str
    tap: AppliedTap
    databases: dict[str, str] = field(default_factory=dict)
    """each service's database (MONGODB_DB)"""
    urls: dict[str, str] = field(default_factory=dict)
    """each service's own AMQP URL (its internal exchange, for a bench that stands in for a sweep), and the admin's"""

    async def accounts(self, count: int) -> list[str]:
        addresses = [f"rb{uuid.uuid4().hex[:8]}@example.jp" for _ in range(count)]
        for address in addresses:
            reply = await self.client.request(ACCOUNT, CreateAccount(actor_token=self.admin, address=address, plan="kwc",
                                                                     initial_password=PASSWORD))
            assert reply.status == "accepted", reply
        for address in addresses:
            while (await self.client.request(RULES, GetRules(actor_token=self.admin, address=address))).status != "accepted":
                await asyncio.sleep(0.1)
        return addresses


@asynccontextmanager
async def services(names: tuple[str, ...] = ("account", "rules"), copy_workers: int = 0,
                   extra_env: dict[str, str] | None = None) -> AsyncIterator[Bench]:
    vhost = f"mailss-bench-{uuid.uuid4().hex[:6]}"
    operator = Broker.from_env()
    await asyncio.to_thread(operator.add_vhost, vhost)
    await operator.provision_async(vhost)
    private, public = generate_keypair()
    base = {**os.environ, "SESSION_PRIVATE_KEY": private, "SESSION_PUBLIC_KEY": public, "OTEL_EXPORTER": "none",
            "BOOTSTRAP_ADMIN_LOGIN": "benchadmin", "BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "BOOTSTRAP_ADMIN_DOMAINS": '["example.jp"]',
            "DOVECOT_MASTER_PASSWORD": Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip(),
            "MAIL_POLICY_API_KEY": Path(os.environ["MAIL_POLICY_API_KEY_FILE"]).read_text().strip(), **(extra_env or {})}
    suffix = uuid.uuid4().hex[:6]
    started = [ServiceProcess(SERVICES[name], {**base, "AMQP_URL": operator.url(name, vhost),
                                               "MONGODB_DB": f"mailss_bench_{name}_{suffix}"},
                              operator.url(ADMIN, vhost), instance=f"bench-{name}-{n}")
               for name in names for n in range(copy_workers if name == "copyjob" else 1)]
    tap = AppliedTap()
    try:
        for service in started:
            await service.start()
        client = await CommandClient.connect(operator.url("mailctl", vhost))
        admin = (await client.request(ACCOUNT, Login(login="benchadmin", password=ADMIN_PASSWORD))).result["token"]
        await tap.open(operator.url(ADMIN, vhost))
        yield Bench(client, admin, tap, {name: f"mailss_bench_{name}_{suffix}" for name in names},
                    {**{name: operator.url(name, vhost) for name in names}, ADMIN: operator.url(ADMIN, vhost)})
        await client.close()
    finally:
        await tap.close()
        for service in reversed(started):
            await service.stop()
        operator.delete_vhost(vhost)


async def one_at_a_time(bench: Bench, count: int, command: Callable[[int], RulesCommand]) -> tuple[list[float], list[float]]:
    """-> command to RulesApplied, command to reply (ms); each change waits for the one before."""
    applied, answered = [], []
    for n in range(count):
        change = command(n)
        start = time.perf_counter()
        reply = await bench.client.request(RULES, change)
        answered.append((time.perf_counter() - start) * 1000)
        applied.append((await bench.tap.wait(change.address, reply.result["version"]) - start) * 1000)
    return applied, answered


@dataclass
class Burst:
    applied_ms: list[float]
    """command sent -> RulesApplied of its version or a later one"""
    replied_ms: list[float]
    sent_in_s: float
    done_in_s: float

    def summary(self, count: int) -> str:
        return (f"  ({count / self.done_in_s:6.1f} changes/s; commands sent in {self.sent_in_s:5.2f} s, "
                f"all applied in {self.done_in_s:5.2f} s)")


async def burst(bench: Bench, count: int, concurrency: int, command: Callable[[int], RulesCommand]) -> Burst:
    """`count` changes sent by `concurrency` clients at once, each timed until the mail server runs it."""
    sent: list[tuple[str, int, float]] = []
    replied: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            change = command(queue.get_nowait())
            start = time.perf_counter()
            reply = await bench.client.request(RULES, change)
            assert reply.status == "accepted", reply
            replied.append((time.perf_counter() - start) * 1000)
            sent.append((change.address, reply.result["version"], start))

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sent_in = time.perf_counter() - began
    deadline = time.perf_counter() + 300
    while any(bench.tap.when(a, v) is None for a, v, _ in sent) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    applied = [((bench.tap.when(a, v) or deadline) - at) * 1000 for a, v, at in sent]
    done_in = max(bench.tap.when(a, v) or deadline for a, v, _ in sent) - began
    return Burst(applied, replied, sent_in, done_in)

