"""Benchmark: rule changes through the broker until the mail server runs them, against the floor.

1,000 changes (spam tag on/off) over 100 accounts go through the real broker, the rules service and
its deploy worker; each change's latency runs from sending the command to the `RulesApplied` event
of that version or a later one (a worker deploys what is stored when it runs, so several queued
changes of one account may go in one deployment). In the same run, the floor: PUTSCRIPT+SETACTIVE
of the same script on one ManageSieve connection kept open, and, separately, what the connection
with its master-user login costs (the worker keeps one per account for a while: a run of changes to
one account, as a user going through the settings page makes, pays one login).

    export MAILSS_STACK=test && scripts/stack.sh up && eval "$(scripts/stack.sh env)" && .venv/bin/python bench/rules_deploy.py
"""

import argparse
import asyncio
import os
import statistics
import time
import warnings
from pathlib import Path

from bench.change_password import EchoClient, EchoServer, sequential
from bench.harness import burst, line, one_at_a_time, pct, services
from services.rules.adapters.managesieve import UnixClient
from services.rules.domain.rules import RuleSet
from services.rules.domain.sieve import compile_sieve
from shared.broker_access import ADMIN
from shared.contracts.rules import SetSpamTag
from shared.plans import Plan

warnings.filterwarnings("ignore", message="Credentials are sent over an unencrypted connection")


def sieve_floor(address: str, count: int) -> tuple[list[float], list[float]]:
    """Per PUTSCRIPT+SETACTIVE on an open connection; per connect+login+logout."""
    socket_path = os.environ["DOVECOT_SIEVE_SOCKET"]
    master, password = os.environ["DOVECOT_MASTER_USER"], Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
    script = compile_sieve(RuleSet(address=address, plan=Plan.KWC, spam_tag=True))
    client = UnixClient(socket_path)
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
        other = UnixClient(socket_path)
        assert other.connect(master, password, authz_id=address, authmech="PLAIN")
        other.logout()
        logins.append((time.perf_counter() - start) * 1000)
    return puts, logins


async def broker_floor(url: str, count: int) -> list[float]:
    """The durable transport alone, in ms: change_password's echo (a persistent, confirmed request into
    a quorum queue, answered on direct reply-to), one request at a time."""
    server, client = EchoServer(), EchoClient()
    await server.start(url, prefetch=1)
    await client.start(url)
    try:
        return [seconds * 1000 for seconds in await sequential(client.request, count)]
    finally:
        await client.connection.close()
        await server.connection.close()


async def main(args: argparse.Namespace) -> None:
    async with services() as bench:
        *addresses, spare = await bench.accounts(args.accounts + 1)
        puts, logins = await asyncio.to_thread(sieve_floor, addresses[0], args.floor)
        transport = await broker_floor(bench.urls[ADMIN], args.floor)
        def on(n: int) -> SetSpamTag:  # each address once: every change changes
            return SetSpamTag(actor_token=bench.admin, address=addresses[n % len(addresses)], on=True)

        def flip(n: int) -> SetSpamTag:
            return SetSpamTag(actor_token=bench.admin, address=spare, on=n % 2 == 0)

        alone, _ = await one_at_a_time(bench, args.sequential, on)
        solo, answered = await one_at_a_time(bench, args.sequential, flip)

        def change(n: int) -> SetSpamTag:
            flips = n // len(addresses) + (n % len(addresses) < args.sequential)  # every change changes
            return SetSpamTag(actor_token=bench.admin, address=addresses[n % len(addresses)], on=flips % 2 == 1)

        result = await burst(bench, args.changes, args.concurrency, change)
        ms = result.applied_ms
        print(f"accounts={args.accounts} changes={args.changes} client concurrency={args.concurrency}")
        print(line("floor: PUTSCRIPT+SETACTIVE, open connection", puts))
        print(line("connect + master-user login + logout", logins))
        print(line("broker alone: durable request -> reply", transport, "  (quorum queue, persistent, confirmed)"))
        print(line("one change at a time: command -> RulesApplied", alone, "  (a new account each: a login each)"))
        print(line("one account, one change at a time: -> reply", answered))
        print(line("one account, one change at a time: -> Applied", solo, "  (its connection kept)"))
        print(line("burst: command -> reply", result.replied_ms))
        print(line("burst: command -> RulesApplied", ms, result.summary(args.changes)))
        print(f"ratio p99 change/floor = {pct(ms, 99) / pct(puts, 99):6.2f}x under the burst, "
              f"{pct(alone, 99) / pct(puts, 99):6.2f}x one at a time, {pct(solo, 99) / pct(puts, 99):6.2f}x on one account"
              f"  (goal <= 2x); "
              f"p50 {statistics.median(ms) / statistics.median(puts):6.2f}x and "
              f"{statistics.median(alone) / statistics.median(puts):6.2f}x")
        print(f"the durable transport alone, one request and its reply: p99 {pct(transport, 99) / pct(puts, 99):6.2f}x "
              f"the floor's p99, p50 {statistics.median(transport) / statistics.median(puts):6.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--floor", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
