"""Benchmark: forwarding, through the real stack, against postmap itself.

- The raw `postmap -i` rate on the stack's forwarding map, in the same run: one entry per call (a
  process each, as the rules service calls it) and 1,000 entries in one call.
- Forward changes (AddForwarding `all` to one more destination) through the broker, each timed from
  the command until it is effective: the `RulesApplied` of its version (the worker writes the map
  entry before it activates the script that redirects to it). First one at a time, then 1,000 over
  100 accounts from 10 clients at once.
- One delivery to an account forwarding all mail to 300 destinations: from the end of the SMTP
  transaction into Postfix until all 300 copies are at the outside world's SMTP sink.

    export MAILSS_STACK=test && scripts/stack.sh up && eval "$(scripts/stack.sh env)" && .venv/bin/python bench/forwarding.py
"""

import argparse
import asyncio
import os
import smtplib
import statistics
import subprocess
import time
import uuid
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from bench.harness import Bench, burst, line, one_at_a_time, pct, services
from services.rules.adapters.postfix_map import ForwardMap
from shared.contracts.rules import SERVICE, AddForwarding

SINK_PORT = int(os.environ.get("RELAY_SINK_PORT", "10025"))  # the stack's relay host (scripts/stack.sh env)


class Sink:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}

    async def handle_DATA(self, server, session, envelope) -> str:
        for recipient in envelope.rcpt_tos:
            self.arrived.setdefault(recipient, time.perf_counter())
        return "250 OK"


def postmap_floor(count: int) -> tuple[list[float], float]:
    """-> ms per single-entry `postmap -i` call; ms for `count` entries in one call (then removed)."""
    table, config = os.environ["POSTFIX_FORWARD_MAP"], os.environ["POSTFIX_CONFIG_DIR"]
    keys = [f"bench{uuid.uuid4().hex[:12]}-a1@{os.environ['FORWARD_DOMAIN']}" for _ in range(count + count // 5)]
    single = []
    for key in keys[count:]:
        start = time.perf_counter()
        subprocess.run(["postmap", "-c", config, "-i", table], input=f"{key} floor@example.org\n", text=True, check=True)
        single.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    subprocess.run(["postmap", "-c", config, "-i", table], text=True, check=True,
                   input="".join(f"{key} floor@example.org\n" for key in keys[:count]))
    batch = (time.perf_counter() - start) * 1000
    subprocess.run(["postmap", "-c", config, "-d", "-", table], input="".join(f"{k}\n" for k in keys), text=True)
    return single, batch


def send(recipient: str) -> float:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "bench@example.net", recipient, "to 300"
    message.set_content("fan-out\r\n")
    with smtplib.SMTP("127.0.0.1", int(os.environ.get("POSTFIX_SMTP_PORT", "10587")), timeout=30) as smtp:
        smtp.send_message(message)
    return time.perf_counter()


async def fan_out(bench: Bench, sink: Sink, rounds: int) -> list[float]:
    """-> ms from the message accepted to its 300th copy at the sink, per round."""
    [address] = await bench.accounts(1)
    destinations = [f"f{n:03d}-{uuid.uuid4().hex[:6]}@example.org" for n in range(300)]
    reply = await bench.client.request(SERVICE, AddForwarding(actor_token=bench.admin, address=address, condition="all",
                                                              destinations=destinations))
    assert reply.status == "accepted", reply
    await bench.tap.wait(address, reply.result["version"])
    times = []
    for _ in range(rounds):
        sink.arrived.clear()
        accepted = await asyncio.to_thread(send, address)
        while not all(d in sink.arrived for d in destinations):
            await asyncio.sleep(0.005)
        times.append((max(sink.arrived[d] for d in destinations) - accepted) * 1000)
    return times


async def main(args: argparse.Namespace) -> None:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=SINK_PORT)
    controller.start()
    try:
        async with services() as bench:
            addresses = await bench.accounts(args.accounts)
            single, batch = await asyncio.to_thread(postmap_floor, args.floor)

            def change(n: int) -> AddForwarding:
                return AddForwarding(actor_token=bench.admin, address=addresses[n % len(addresses)], condition="all",
                                     destinations=[f"c{n:04d}@example.org"])

            alone, _ = await one_at_a_time(bench, args.sequential, lambda n: change(args.changes + n))
            result = await burst(bench, args.changes, args.concurrency, change)
            delivery = await fan_out(bench, sink, args.rounds)
            table = ForwardMap(os.environ["POSTFIX_FORWARD_MAP"], os.environ["POSTFIX_CONFIG_DIR"], os.environ["FORWARD_DOMAIN"])
            assert await table.lookup("nothing-here") is None
    finally:
        controller.stop()
    ms = result.applied_ms
    print(f"accounts={args.accounts} changes={args.changes} client concurrency={args.concurrency}")
    print(line("floor: postmap -i, one entry per call", single, f"  ({1000 / statistics.median(single):6.1f} calls/s)"))
    print(f"{'floor: postmap -i, ' + str(args.floor) + ' entries in one call':<44} {batch:8.1f} ms "
          f"({args.floor / batch * 1000:8.0f} entries/s)")
    print(line("one change at a time: command -> effective", alone))
    print(line("forward change: command -> reply", result.replied_ms))
    print(line("forward change: command -> effective", ms, result.summary(args.changes)))
    print(line("one message to 300 destinations: all copies out", delivery))
    print(f"ratio p50 change/postmap call = {statistics.median(ms) / statistics.median(single):6.2f}x, "
          f"p99 {pct(ms, 99) / pct(single, 99):6.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--floor", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
