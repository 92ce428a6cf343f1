"""The rules service as a real process, with the account service it follows, and an SMTP sink on
the port Dovecot sends Sieve mail to (standing for the outside world)."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pymongo
import pytest
from aiosmtpd.controller import Controller

from shared.broker_access import Broker
from shared.registry import SERVICES
from tests.support import ServiceProcess, stack_env

SINK_PORT = 10025  # submission_host in deploy/dovecot/dovecot.conf.in


class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def to(self, recipient: str) -> list[bytes]:
        return [content for _, recipients, content in self.messages if recipient in recipients]


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[Sink]:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=SINK_PORT)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture(scope="session")
def rules_env(service_env: dict[str, str], operator: Broker, vhost: str) -> dict[str, str]:
    return {**service_env, "AMQP_URL": operator.url("rules", vhost), "MONGODB_DB": f"mailss_rules_{uuid.uuid4().hex[:8]}",
            "DOVECOT_MASTER_PASSWORD": Path(stack_env("DOVECOT_MASTER_PASSWORD_FILE")).read_text().strip(),
            "RECONCILE_INTERVAL_S": "2"}


@pytest.fixture(scope="session")
async def rules_service(rules_env: dict[str, str], amqp_url: str, account_service) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess(SERVICES["rules"], rules_env, amqp_url)
    await service.start()
    yield service
    await service.stop()
    assert not service.programming_errors(), f"the service hit bugs; see {service.log_path}"
    pymongo.MongoClient(rules_env["MONGODB_URL"]).drop_database(rules_env["MONGODB_DB"])


@pytest.fixture
def sleep():
    return asyncio.sleep
