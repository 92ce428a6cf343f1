"""Benchmark: rule changes through the broker until the mail server runs them, against the floor.

1,000 changes (spam tag on/off) over 100 accounts go through the real broker, the rules service and
its deploy worker; each change's latency runs from sending the command to the `RulesApplied` event
of that version or a later one (a worker deploys what is stored when it runs, so several queued
changes of one account may go in one deployment). In the same run, the floor: PUTSCRIPT+SETACTIVE
of the same script on one ManageSieve connection kept open, and, separately, what the connection
with its master-user login costs (the worker keeps one per account for a while: a run of changes to
one account, as a user going through the settings page makes, pays one login).

    scripts/stack.sh up && eval "$(scripts/stack.sh env)" && .venv/bin/python bench/rules_deploy.py
"""

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
import warnings
from pathlib import Path

import aio_pika
from sievelib.managesieve import Client  # type: ignore[import-untyped]

from services.rules.domain.rules import RuleSet
from services.rules.domain.sieve import compile_sieve
from shared.auth import generate_keypair
from shared.broker_access import ADMIN, Broker
from shared.client import CommandClient
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount, Login
from shared.contracts.rules import SERVICE, GetRules, SetSpamTag
from shared.plans import Plan
from shared.registry import SERVICES
from tests.support import ServiceProcess

ADMIN_PASSWORD = "Bench-admin-passw0rd!"
warnings.filterwarnings("ignore", message="Credentials are sent over an unencrypted connection")
PASSWORD = "Bench-Passw0rd-1!"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(label: str, values: list[float], extra: str = "") -> str:
    return f"{label:<44} n={len(values):>5}  p50={pct(values, 50):8.2f} ms  p99={pct(values, 99):8.2f} ms{extra}"


def sieve_floor(address: str, count: int) -> tuple[list[float], list[float]]:
    """Per PUTSCRIPT+SETACTIVE on an open connection; per connect+login+logout."""
    host, port = "127.0.0.1", int(os.environ.get("DOVECOT_SIEVE_PORT", "14190"))
    master, password = os.environ["DOVECOT_MASTER_USER"], Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
    script = compile_sieve(RuleSet(address=address, plan=Plan.KWC, spam_tag=True))
    client = Client(host, port)
    assert client.connect(master, password, authz_id=address, authmech="PLAIN")
    puts = []
    for _ in range(count):
        start = time.perf_counter()
        assert client.putscript("rules", script) and client.setactive("rules")
        puts.append((time.perf_counter() - start) * 1000)
    client.logout()
    logins = []
    for _ in range(count // 4):
        start = time.perf_counter()
        other = Client(host, port)
        assert other.connect(master, password, authz_id=address, authmech="PLAIN")
        other.logout()
        logins.append((time.perf_counter() - start) * 1000)
    return puts, logins


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


async def main(args: argparse.Namespace) -> None:
    vhost = f"mailss-bench-{uuid.uuid4().hex[:6]}"
    operator = Broker.from_env()
    await asyncio.to_thread(operator.add_vhost, vhost)
    await operator.provision_async(vhost)
    private, public = generate_keypair()
    base = {**os.environ, "SESSION_PRIVATE_KEY": private, "SESSION_PUBLIC_KEY": public, "OTEL_EXPORTER": "none",
            "BOOTSTRAP_ADMIN_LOGIN": "benchadmin", "BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "BOOTSTRAP_ADMIN_DOMAINS": '["example.jp"]',
            "DOVECOT_MASTER_PASSWORD": Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip(),
            "MAIL_POLICY_API_KEY": Path(os.environ["MAIL_POLICY_API_KEY_FILE"]).read_text().strip()}
    suffix = uuid.uuid4().hex[:6]
    account = ServiceProcess(SERVICES["account"], {**base, "AMQP_URL": operator.url(ACCOUNT, vhost),
                                                   "MONGODB_DB": f"mailss_bench_{suffix}"},
                             operator.url(ADMIN, vhost), instance="bench-account")
    rules = ServiceProcess(SERVICES["rules"], {**base, "AMQP_URL": operator.url(SERVICE, vhost),
                                               "MONGODB_DB": f"mailss_bench_rules_{suffix}"},
                           operator.url(ADMIN, vhost), instance="bench-rules")
    try:
        await account.start()
        await rules.start()
        client = await CommandClient.connect(operator.url("mailctl", vhost))
        admin = (await client.request(ACCOUNT, Login(login="benchadmin", password=ADMIN_PASSWORD))).result["token"]
        *addresses, spare = [f"rb{uuid.uuid4().hex[:8]}@example.jp" for _ in range(args.accounts + 1)]
        for address in [*addresses, spare]:
            reply = await client.request(ACCOUNT, CreateAccount(actor_token=admin, address=address, plan="kwc",
                                                                initial_password=PASSWORD))
            assert reply.status == "accepted", reply
        for address in [*addresses, spare]:
            while (await client.request(SERVICE, GetRules(actor_token=admin, address=address))).status != "accepted":
                await asyncio.sleep(0.1)
        puts, logins = await asyncio.to_thread(sieve_floor, addresses[0], args.floor)
        tap = AppliedTap()
        await tap.open(operator.url(ADMIN, vhost))
        alone = []
        for n in range(args.sequential):
            address = addresses[n % len(addresses)]
            start = time.perf_counter()
            reply = await client.request(SERVICE, SetSpamTag(actor_token=admin, address=address, on=True))
            while tap.when(address, reply.result["version"]) is None:
                await asyncio.sleep(0.001)
            alone.append((tap.when(address, reply.result["version"]) - start) * 1000)  # type: ignore[operator]
        solo, answered = [], []
        for n in range(args.sequential):
            start = time.perf_counter()
            reply = await client.request(SERVICE, SetSpamTag(actor_token=admin, address=spare, on=n % 2 == 0))
            answered.append((time.perf_counter() - start) * 1000)
            while tap.when(spare, reply.result["version"]) is None:
                await asyncio.sleep(0.001)
            solo.append((tap.when(spare, reply.result["version"]) - start) * 1000)  # type: ignore[operator]
        sent: list[tuple[str, int, float]] = []
        replied: list[float] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(args.changes):
            queue.put_nowait(n)

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                address = addresses[n % len(addresses)]
                start = time.perf_counter()
                flips = n // len(addresses) + (n % len(addresses) < args.sequential)  # every change changes
                reply = await client.request(SERVICE, SetSpamTag(actor_token=admin, address=address, on=flips % 2 == 0))
                assert reply.status == "accepted", reply
                replied.append((time.perf_counter() - start) * 1000)
                sent.append((address, reply.result["version"], start))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        sent_in = time.perf_counter() - began
        deadline = time.perf_counter() + 300
        while any(tap.when(a, v) is None for a, v, _ in sent) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        latencies = [(tap.when(a, v) or deadline) - at for a, v, at in sent]
        done_in = max(tap.when(a, v) or deadline for a, v, _ in sent) - began
        deployments = sum(len(v) for v in tap.applied.values())
        ms = [x * 1000 for x in latencies]
        print(f"accounts={args.accounts} changes={args.changes} client concurrency={args.concurrency}")
        print(line("floor: PUTSCRIPT+SETACTIVE, open connection", puts))
        print(line("connect + master-user login + logout", logins))
        print(line("one change at a time: command -> RulesApplied", alone, "  (a new account each: a login each)"))
        print(line("one account, one change at a time: -> reply", answered))
        print(line("one account, one change at a time: -> Applied", solo, "  (its connection kept)"))
        print(line("burst: command -> reply", replied))
        print(line("burst: command -> RulesApplied", ms,
                   f"  ({args.changes / done_in:6.1f} changes/s; commands sent in {sent_in:5.2f} s, "
                   f"all applied in {done_in:5.2f} s, {deployments} deployments)"))
        print(f"ratio p99 change/floor = {pct(ms, 99) / pct(puts, 99):6.2f}x under the burst, "
              f"{pct(alone, 99) / pct(puts, 99):6.2f}x one at a time, {pct(solo, 99) / pct(puts, 99):6.2f}x on one account"
              f"  (goal <= 2x); "
              f"p50 {statistics.median(ms) / statistics.median(puts):6.2f}x and "
              f"{statistics.median(alone) / statistics.median(puts):6.2f}x")
        await client.close()
        await tap.close()
    finally:
        await rules.stop()
        await account.stop()
        operator.delete_vhost(vhost)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--floor", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
