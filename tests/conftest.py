"""Fixtures for integration tests: the real stack started by scripts/stack.sh, an isolated
RabbitMQ vhost and MongoDB database per test session, and services run as real processes."""

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pymongo
import pytest
from aiosmtpd.controller import Controller

from shared.auth import TokenIssuer, generate_keypair, load_private_key
from shared.broker_access import ADMIN, Broker
from shared.client import CommandClient
from shared.contracts.account import SERVICE, Login
from shared.registry import FRONTS, SERVICES
from tests.kit.service import KIT_SERVICE
from tests.source_server import SourceServer
from tests.support import (
    ADMIN_DOMAIN,
    ADMIN_LOGIN,
    ADMIN_PASSWORD,
    LOGS,
    RUN,
    EventTap,
    FrontProcess,
    ServiceProcess,
    stack_env,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked before_all run first and after_all last (the live system's check brackets the run)."""
    first = [item for item in items if item.get_closest_marker("before_all")]
    last = [item for item in items if item.get_closest_marker("after_all")]
    items[:] = first + [item for item in items if item not in first and item not in last] + last


@pytest.fixture(scope="session")
def operator() -> Broker:
    stack_env("BROKER_SECRETS_DIR")
    return Broker.from_env()


@pytest.fixture(scope="session")
def vhost(operator: Broker) -> Iterator[str]:
    """Provisioned as the operator provisions `/`: a user per service and client, the shared topology."""
    name = f"mailss-test-{uuid.uuid4().hex[:8]}"
    operator.add_vhost(name)
    operator.provision(name, services=[*SERVICES.values(), KIT_SERVICE])
    yield name
    operator.delete_vhost(name)


@pytest.fixture(scope="session")
def amqp_url(operator: Broker, vhost: str) -> str:
    """The operator's (admin) URL: tests look at every queue and event as operators do."""
    return operator.url(ADMIN, vhost)


@pytest.fixture(scope="session")
def client_url(operator: Broker, vhost: str) -> str:
    """mailctl's URL: what a client may do, and no more."""
    return operator.url("mailctl", vhost)


@pytest.fixture(scope="session")
def keys() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture(scope="session")
def issuer(keys: tuple[str, str]) -> TokenIssuer:
    return TokenIssuer(load_private_key(keys[0]), timedelta(hours=2))


@pytest.fixture(scope="session")
def spans_dir(vhost: str) -> Path:
    """Where every process of the session exports its spans, a JSON-lines file each (tests/support.py
    exported_spans); writable by each service's own user."""
    directory = RUN / "spans" / vhost  # not under LOGS: only root may enter it
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o1777)
    return directory


@pytest.fixture(scope="session")
def service_env(operator: Broker, vhost: str, keys: tuple[str, str], spans_dir: Path) -> dict[str, str]:
    database = f"mailss_test_{uuid.uuid4().hex[:8]}"
    return {
        **os.environ,
        "AMQP_URL": operator.url(SERVICE, vhost), "MONGODB_URL": stack_env("MONGODB_URL"), "MONGODB_DB": database,
        "SESSION_PRIVATE_KEY": keys[0], "SESSION_PUBLIC_KEY": keys[1],
        "DOVECOT_PASSWD_DIR": stack_env("DOVECOT_PASSWD_DIR"),
        "DOVECOT_MAIL_DIR": stack_env("DOVECOT_MAIL_DIR"),
        "MAIL_POLICY_API_KEY": Path(stack_env("MAIL_POLICY_API_KEY_FILE")).read_text().strip(),
        "BOOTSTRAP_ADMIN_LOGIN": ADMIN_LOGIN, "BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "BOOTSTRAP_ADMIN_DOMAINS": f'["{ADMIN_DOMAIN}"]', "OTEL_EXPORTER": "file",
        "OTEL_EXPORTER_FILE_DIR": str(spans_dir),
        "OUTBOX_SWEEP_INTERVAL_S": "1", "OUTBOX_STALE_AFTER_S": "5", "ENDED_SESSIONS_SWEEP_INTERVAL_S": "1",
        "HEALTH_DIR": stack_env("HEALTH_DIR"), "PASSWD_RECONCILE_INTERVAL_S": "3",
        "TOMBSTONE_SWEEP_INTERVAL_S": "2", "TOMBSTONE_RETENTION_DAYS": "0.0001",  # 8.6 s
        "DELETION_SWEEP_INTERVAL_S": "2", "HOME_SWEEP_INTERVAL_S": "2", "ORPHAN_HOME_GRACE_S": "60",
        "MAIL_SOURCE_MAX_FAILURES": "20",
        # The suite's own IMAP logins come from 127.0.0.1, many of them failing on purpose; the guessing
        # limit's tests use loopback addresses of their own.
        "MAIL_UNLIMITED_SOURCES": '["127.0.0.1/32", "::1/128"]',
    }


async def running_service(name: str, env: dict[str, str], amqp_url: str) -> AsyncIterator[ServiceProcess]:
    """A registered service as a real process for the session; its log must show no bug, its database goes."""
    service = ServiceProcess(SERVICES[name], env, amqp_url)
    await service.start()
    yield service
    await service.stop()
    assert not service.programming_errors(), f"the service hit bugs; see {service.log_path}"
    pymongo.MongoClient(env["MONGODB_URL"]).drop_database(env["MONGODB_DB"])


@pytest.fixture(scope="session")
async def account_service(service_env: dict[str, str], amqp_url: str) -> AsyncIterator[ServiceProcess]:
    async for service in running_service("account", service_env, amqp_url):
        yield service


@pytest.fixture(scope="session")
async def client(account_service: ServiceProcess, client_url: str) -> AsyncIterator[CommandClient]:
    client = await CommandClient.connect(client_url)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def admin_token(client: CommandClient) -> str:
    reply = await client.request(SERVICE, Login(login=ADMIN_LOGIN, password=ADMIN_PASSWORD))
    assert reply.status == "accepted", reply
    return reply.result["token"]


@pytest.fixture(scope="session")
def gateway_env(operator: Broker, vhost: str, keys: tuple[str, str], spans_dir: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "AMQP_URL": operator.url("gateway", vhost), "SESSION_PUBLIC_KEY": keys[1],
            "OTEL_EXPORTER": "file", "OTEL_EXPORTER_FILE_DIR": str(spans_dir),
            "GATEWAY_FORM_SECRET": secrets.token_urlsafe(32), "GATEWAY_PORT": stack_env("GATEWAY_PORT"),
            "GATEWAY_SIGN_IN_ATTEMPTS": "50"}


@pytest.fixture(scope="session")
async def gateway(account_service: ServiceProcess, gateway_env: dict[str, str]) -> AsyncIterator[FrontProcess]:
    process = FrontProcess(FRONTS["gateway"], gateway_env, int(gateway_env["GATEWAY_PORT"]))
    await process.start()
    yield process
    await process.stop()
    assert not process.programming_errors(), f"the gateway hit bugs; see {process.log_path}"


@pytest.fixture
async def events(amqp_url: str) -> AsyncIterator[EventTap]:
    tap = await EventTap.open(amqp_url)
    yield tap
    await tap.close()


# ------------------------------------------------------------------ the rules service and the outside world


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
    # The test stack's relay host: where its Postfix sends mail for the outside world.
    controller = Controller(sink, hostname="127.0.0.1", port=int(stack_env("RELAY_SINK_PORT")))
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture(scope="session")
def rules_env(service_env: dict[str, str], operator: Broker, vhost: str) -> dict[str, str]:
    return {**service_env, "AMQP_URL": operator.url("rules", vhost), "MONGODB_DB": f"mailss_rules_{uuid.uuid4().hex[:8]}",
            "DOVECOT_MASTER_PASSWORD": Path(stack_env("DOVECOT_MASTER_PASSWORD_FILE")).read_text().strip(),
            "RECONCILE_INTERVAL_S": "2"}


@pytest.fixture(scope="session")
def test_ca() -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, key) for `localhost`: the other provider's IMAPS."""
    from tests.tls_ca import make_ca

    return make_ca(LOGS.parent / "test-ca")


@pytest.fixture(scope="session")
async def source_server(test_ca) -> AsyncIterator[SourceServer]:
    """The other provider's IMAP server (tests/source_server.py): for the copy job's, the trace and the panel's tests."""
    server = await SourceServer.start(RUN / "source-dovecot", test_ca[1], test_ca[2])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def copyjob_env(service_env: dict[str, str], operator: Broker, vhost: str, test_ca) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {**service_env, "SOURCE_CA_FILE": str(test_ca[0]), "MAX_MESSAGE_BYTES": "1000000",
            "AMQP_URL": operator.url("copyjob", vhost), "MONGODB_DB": f"mailss_copy_{uuid.uuid4().hex[:8]}",
            "DOVECOT_MASTER_PASSWORD": Path(stack_env("DOVECOT_MASTER_PASSWORD_FILE")).read_text().strip(),
            "COPY_SECRET_KEY": Fernet.generate_key().decode(), "ALLOWED_SOURCE_NETWORKS": '["127.0.0.1/32", "::1/128"]',
            "ALLOW_PLAIN_SOURCES": "true", "PROGRESS_INTERVAL_S": "0.3", "CHUNK_MESSAGES": "40",
            "PURGE_BATCH": "100", **COPY_LIMITS}


COPY_LIMITS = {"SOURCE_TIMEOUT_S": "3", "STEP_ATTEMPTS": "2", "RETRY_PAUSE_S": "0.3", "MAX_FOLDERS": "40",
               "JOB_MAX_BYTES": "40000000", "STEP_DEADLINE_S": "20"}
"""low enough for the hostile-source tests to reach them in seconds (tests/copyjob/integration/test_hostile_source.py)"""


@pytest.fixture(scope="session")
async def copyjob_service(copyjob_env: dict[str, str], amqp_url: str, account_service) -> AsyncIterator[ServiceProcess]:
    async for service in running_service("copyjob", copyjob_env, amqp_url):
        yield service


@pytest.fixture(scope="session")
async def rules_service(rules_env: dict[str, str], amqp_url: str, account_service) -> AsyncIterator[ServiceProcess]:
    async for service in running_service("rules", rules_env, amqp_url):
        yield service


@pytest.fixture(scope="session")
def notifier_env(service_env: dict[str, str], operator: Broker, vhost: str) -> dict[str, str]:
    return {**service_env, "AMQP_URL": operator.url("notifier", vhost), "MONGODB_DB": f"mailss_notif_{uuid.uuid4().hex[:8]}",
            "SMTP_PORT": stack_env("POSTFIX_SUBMIT_PORT"),
            "SMTP_PASSWORD": Path(stack_env("NOTIFIER_SMTP_PASSWORD_FILE")).read_text().strip(),
            "MAIL_FROM": "noreply@example.jp", "BRAND": "CPI",
            "FAQ_URL": "https://faq.example.jp/3661/", "RETRY_SWEEP_S": "0.3", "RETRY_FIRST_PAUSE_S": "0.5"}


@pytest.fixture(scope="session")
async def notifier_service(notifier_env: dict[str, str], amqp_url: str, account_service, smtp_sink) -> AsyncIterator[ServiceProcess]:
    async for service in running_service("notifier", notifier_env, amqp_url):
        yield service
