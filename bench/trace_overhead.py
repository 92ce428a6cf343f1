"""Benchmark: what tracing adds to one command in the kit, in process, over the unit tests' fakes (no broker,
no database: only the kit's own work, so tracing's share is as large as it can be).

Runs itself once per mode in a fresh process (a process has one tracer provider):
  none  OTEL_EXPORTER=none (no provider: spans are no-ops, a received context still passes through)
  spans an SDK provider that records every span and exports none (the cost of the spans themselves)
  file  every span exported (batch processor, JSON lines to a temporary file)

    .venv/bin/python bench/trace_overhead.py [--commands 20000]
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("none", "spans", "file")


async def measure(commands: int) -> list[float]:
    from services.account.entrypoint import CLIENT_COMMANDS
    from shared.contracts.account import ChangeComment, SetFirstAdmin
    from shared.contracts.base import FlushOutbox
    from shared.messaging.commands import CommandConsumer
    from shared.messaging.outbox import OutboxRelay
    from shared.messaging.redaction import Redactor
    from shared.messaging.service import command_parser
    from shared.messaging.unit_of_work import ShardAggregates
    from shared.telemetry import span, trace_headers
    from shared.topology import ACCOUNT_KEY_HEADER
    from tests.shared.conftest import FakeBroker, FakeChannel, FakeCollection, FakeHandler, FakeMessage, FakeRawMessage

    journal: list = []
    broker, collection = FakeBroker(journal), FakeCollection(journal)
    kinds = (*CLIENT_COMMANDS, SetFirstAdmin, FlushOutbox)
    consumer = CommandConsumer(
        queue="account.commands.0", broker=broker, internal_exchange="account.internal",  # type: ignore[arg-type]
        parse=command_parser(kinds), handlers={kind: FakeHandler(journal) for kind in CLIENT_COMMANDS},
        aggregates=ShardAggregates(collection, service="account"), relay=OutboxRelay(),  # type: ignore[arg-type]
        transient_errors=(ConnectionError,), delivery_limit=5, redact=Redactor.for_messages(kinds))
    channel = FakeChannel(broker)
    took = []
    for n in range(commands):
        command = ChangeComment(actor_token="t" * 200, address=f"u{n % 100}@example.jp", comment=str(n))
        with span("request"):  # as the gateway's request span: the command brings a context
            headers = {ACCOUNT_KEY_HEADER: command.subject_key(), **trace_headers()}
        message = FakeMessage(command.model_dump_json().encode(), FakeRawMessage(
            headers=headers, message_id=str(command.message_id), correlation_id=None,
            reply_to="amq.rabbitmq.reply-to.x", delivered_on=channel), journal)
        started = time.perf_counter()
        await consumer(message)  # type: ignore[arg-type]
        took.append((time.perf_counter() - started) * 1000)
        journal.clear()
        broker.published.clear()
    return took[commands // 10:]  # warmed up


def run_mode(mode: str, commands: int) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from shared.settings import TelemetrySettings
    from shared.telemetry import make_tracer_provider

    with tempfile.TemporaryDirectory() as spans:
        settings = TelemetrySettings(otel_exporter=mode if mode != "spans" else "none",
                                     otel_exporter_file_dir=Path(spans), instance="bench")
        provider = make_tracer_provider("bench", settings)
        if mode == "spans":
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        took = asyncio.run(measure(commands))
        if provider:
            provider.shutdown()
            exported = sum(len(p.read_text().splitlines()) for p in Path(spans).glob("*.jsonl"))
        else:
            exported = 0
    took.sort()
    print(f"{mode:<5} n={len(took)}  mean={statistics.fmean(took) * 1000:7.1f} µs  p50={took[len(took) // 2] * 1000:7.1f} µs"
          f"  p99={took[int(len(took) * 0.99)] * 1000:7.1f} µs  spans exported={exported}")
    print(f"P50_US {took[len(took) // 2] * 1e6:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=20000)
    parser.add_argument("--mode", choices=MODES)
    args = parser.parse_args()
    if args.mode:
        run_mode(args.mode, args.commands)
        return
    p50: dict[str, float] = {}
    for mode in MODES:
        done = subprocess.run([sys.executable, __file__, "--mode", mode, "--commands", str(args.commands)], check=True,
                              cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
        for line in done.stdout.splitlines():
            if line.startswith("P50_US "):
                p50[mode] = float(line.split()[1])
            else:
                print(line)
    for mode in MODES[1:]:
        print(f"{mode:<5} p50 {p50[mode] / p50['none']:.2f}x the untraced baseline (none), measured in this run")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
