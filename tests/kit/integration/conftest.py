"""The kit's test service as real processes over the real broker and database."""

import uuid
from collections.abc import AsyncIterator

import pymongo
import pytest

from shared.broker_access import Broker
from shared.client import CommandClient
from tests.kit.service import KIT_SERVICE
from tests.support import ServiceProcess, system_user


@pytest.fixture(scope="session", autouse=True)
def kit_user() -> str:
    """The kit's test service runs as a user of its own, as every service does (the database's group)."""
    return system_user(KIT_SERVICE.user, "mailss")


@pytest.fixture(scope="session")
def kit_env(service_env: dict[str, str], operator: Broker, vhost: str) -> dict[str, str]:
    return {**service_env, "MONGODB_DB": f"mailss_kit_{uuid.uuid4().hex[:8]}",
            "AMQP_URL": operator.url(KIT_SERVICE.name, vhost)}


@pytest.fixture(scope="session")
def kit_db(kit_env: dict[str, str]):
    client = pymongo.MongoClient(kit_env["MONGODB_URL"], tz_aware=True)
    yield client[kit_env["MONGODB_DB"]]
    client.drop_database(kit_env["MONGODB_DB"])
    client.close()


@pytest.fixture(scope="session")
async def kit_service(kit_env: dict[str, str], amqp_url: str, kit_db) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess(KIT_SERVICE, kit_env, amqp_url, instance="kit-a")
    await service.start()
    yield service
    await service.stop()
    assert not service.programming_errors(), f"the service hit bugs; see {service.log_path}"


@pytest.fixture(scope="session")
async def kit_client(kit_service: ServiceProcess, client_url: str) -> AsyncIterator[CommandClient]:
    client = await CommandClient.connect(client_url)
    yield client
    await client.close()


@pytest.fixture
async def instances(kit_env: dict[str, str], amqp_url: str) -> AsyncIterator[list[ServiceProcess]]:
    """Extra instances a test starts; each is stopped afterwards."""
    started: list[ServiceProcess] = []
    yield started
    for process in started:
        await process.stop()
        assert not process.programming_errors(), f"{process.instance} hit bugs; see {process.log_path}"
