"""Health of one service process: the process reports, `python -m shared.health <service>` judges.

The process writes a report every second, and at once when its broker connection drops: broker
connected, every subscriber holding its consumer, database answering. The command fails when the
report is stale or says otherwise, or when the broker itself shows no consumer on one of the
service's queues (FastStream consumers can vanish after a reconnect, faststream#2758).
"""

import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
from faststream.rabbit import RabbitBroker
from faststream.rabbit.subscriber.usecase import RabbitSubscriber
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo.asynchronous.database import AsyncDatabase

from shared.messaging.broker import is_consuming

REPORT_EVERY_S = 1.0
STALE_AFTER_S = 5.0
PING_TIMEOUT_S = 1.0
DEFAULT_DIR = Path(tempfile.gettempdir()) / "mailss-health"


def report_path(health_dir: Path, service: str, instance: str) -> Path:
    return health_dir / f"{service}@{instance}.json"


def _write(path: Path, report: Mapping[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**report, "at": time.time()}))
    tmp.replace(path)


@dataclass
class HealthReporter:
    path: Path
    broker: RabbitBroker
    database: AsyncDatabase[dict[str, Any]]
    subscribers: dict[str, RabbitSubscriber] = field(default_factory=dict)
    _last: dict[str, Any] = field(default_factory=dict)

    async def run(self) -> None:
        while True:
            self._last = await self.check()
            _write(self.path, self._last)
            await asyncio.sleep(REPORT_EVERY_S)

    def connection_closed(self, *_: Any) -> None:
        """Broker callback: say so now, not at the next round; no consumer survives its connection."""
        consumers = dict.fromkeys(self._last.get("consumers", self.subscribers), False)
        _write(self.path, {"database": None, **self._last, "broker": False, "consumers": consumers})

    async def check(self) -> dict[str, Any]:
        return {"broker": await self.broker.ping(0.2), "database": await self._database_answers(),
                "consumers": {queue: is_consuming(s) for queue, s in self.subscribers.items()}}

    async def _database_answers(self) -> bool:
        try:
            await asyncio.wait_for(self.database.command("ping"), PING_TIMEOUT_S)
        except Exception:
            return False
        return True

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class HealthSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    amqp_url: SecretStr
    instance: str = Field(default_factory=socket.gethostname)
    health_dir: Path = DEFAULT_DIR


def problems(report: Mapping[str, Any] | None) -> list[str]:
    """What the process itself says is wrong."""
    if report is None:
        return ["no health report: is the service running?"]
    found = []
    if time.time() - report["at"] > STALE_AFTER_S:
        found.append(f"health report is {time.time() - report['at']:.0f}s old: the process is stuck or gone")
    if not report["broker"]:
        found.append("broker connection lost")
    if not report["database"]:
        found.append("database does not answer")
    found += [f"no consumer on {queue}" for queue, ok in report["consumers"].items() if not ok]
    return found


async def broker_problems(amqp_url: str, queues: list[str]) -> list[str]:
    """What the broker says: every queue must have a consumer."""
    try:
        connection = await aio_pika.connect(amqp_url, timeout=5)
    except Exception as error:
        return [f"broker unreachable: {type(error).__name__}"]
    async with connection:
        found = []
        for queue in queues:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            if declared.declaration_result.consumer_count == 0:
                found.append(f"the broker shows no consumer on {queue}")
        return found


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        report: dict[str, Any] = json.loads(path.read_text())
        return report
    except (FileNotFoundError, ValueError):
        return None


async def check(service: str, settings: HealthSettings) -> list[str]:
    report = read_report(report_path(settings.health_dir, service, settings.instance))
    found = problems(report)
    if not found and report is not None:
        found = await broker_problems(settings.amqp_url.get_secret_value(), list(report["consumers"]))
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m shared.health <service>", file=sys.stderr)
        return 2
    found = asyncio.run(check(argv[1], HealthSettings()))
    print("; ".join(found) if found else "healthy")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
