"""The gateway as a real process (its own user and broker user) in front of the real services, and a
real browser on it."""

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from selenium import webdriver

from shared.broker_access import Broker
from shared.client import CommandClient
from shared.contracts.account import SERVICE, CreateAccount
from shared.registry import FRONTS
from tests.gateway.browser import Panel, chromium
from tests.support import FrontProcess, ServiceProcess, eventually, imap_login, new_address, stack_env


@pytest.fixture(scope="session")
def gateway_env(operator: Broker, vhost: str, keys: tuple[str, str]) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "AMQP_URL": operator.url("gateway", vhost), "SESSION_PUBLIC_KEY": keys[1],
            "GATEWAY_FORM_SECRET": secrets.token_urlsafe(32), "GATEWAY_PORT": stack_env("GATEWAY_PORT"),
            "GATEWAY_SIGN_IN_ATTEMPTS": "50"}


@pytest.fixture(scope="session")
async def gateway(account_service: ServiceProcess, gateway_env: dict[str, str]) -> AsyncIterator[FrontProcess]:
    process = FrontProcess(FRONTS["gateway"], gateway_env, int(gateway_env["GATEWAY_PORT"]))
    await process.start()
    yield process
    await process.stop()
    assert not process.programming_errors(), f"the gateway hit bugs; see {process.log_path}"


@pytest.fixture(scope="session")
def driver() -> Iterator[webdriver.Chrome]:
    browser = chromium()
    yield browser
    browser.quit()


@pytest.fixture
def panel(driver: webdriver.Chrome, gateway: FrontProcess) -> Iterator[Panel]:
    driver.delete_all_cookies()
    panel = Panel(driver, gateway.url)
    panel.open("/login")
    driver.delete_all_cookies()
    yield panel


async def new_account(client: CommandClient, admin_token: str, password: str, *, plan: str = "business-standard",
                      quota_mb: int | None = 1024, address: str | None = None) -> str:
    """An account made through the account service, once its mail login works."""
    address = address or new_address()
    reply = await client.request(SERVICE, CreateAccount(
        actor_token=admin_token, address=address, plan=plan, initial_password=password, quota_mb=quota_mb))  # type: ignore[arg-type]
    assert reply.status == "accepted", reply
    await eventually(lambda: imap_login(address, password), timeout=30, what=f"{address}'s mail login")
    return address
