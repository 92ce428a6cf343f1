"""A real browser on the gateway (tests/conftest.py runs it as a real process in front of the real services)."""

from collections.abc import Iterator

import pytest
from selenium import webdriver

from shared.client import CommandClient
from shared.contracts.account import SERVICE, CreateAccount
from tests.gateway.browser import Panel, chromium
from tests.support import FrontProcess, eventually, imap_login, new_address


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
