"""The gateway's pages against in-memory services (tests/gateway/unit/fakes.py), through HTTP."""

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.gateway.adapters.pages import Pages
from services.gateway.adapters.web import Gateway, build_app
from services.gateway.application.panel import Panel
from services.gateway.domain.forms import FormKeys
from services.gateway.domain.throttle import AttemptLimit
from shared.auth import TokenVerifier, load_public_key
from tests.gateway.unit.fakes import PASSWORDS, PUBLIC_KEY, FakeServices

ATTEMPTS = 5
ORIGIN = "https://panel.example"


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
def gateway(services: FakeServices) -> Gateway:
    return Gateway(panel=Panel(services), pages=Pages(), forms=FormKeys(b"k" * 32),
                   verifier=TokenVerifier(load_public_key(PUBLIC_KEY)),
                   attempts=AttemptLimit({"login": ATTEMPTS, "client": 2 * ATTEMPTS}, 300))


@pytest.fixture
def browser(gateway: Gateway) -> Iterator[TestClient]:
    with TestClient(build_app(gateway), base_url=ORIGIN, follow_redirects=False) as client:
        yield client


def field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


def sign_in(browser: TestClient, login: str) -> None:
    page = browser.get("/login")
    reply = browser.post("/login", data={"login": login, "password": PASSWORDS[login], "nonce": field(page.text, "nonce")})
    assert reply.status_code == 303, reply.text


def form_token(browser: TestClient, path: str = "/password") -> str:
    return field(browser.get(path).text, "form_token")
