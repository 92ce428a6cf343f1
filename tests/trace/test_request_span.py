"""The gateway's request span is the parent of the commands it sends, and the client puts the current
span's context into every command it publishes."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.gateway.adapters.pages import Pages
from services.gateway.adapters.tracing import UntrustedTraceContext
from services.gateway.adapters.web import Gateway, build_app
from services.gateway.application.panel import Panel
from services.gateway.domain.forms import FormKeys
from services.gateway.domain.throttle import AttemptLimit
from shared.auth import TokenVerifier, load_public_key
from shared.client import CommandClient
from shared.contracts.account import Login
from shared.contracts.base import Accepted, AnonymousCommand, Command, Rejected
from shared.telemetry import span, trace_headers
from tests.gateway.unit.fakes import PASSWORDS, PUBLIC_KEY, USER, FakeServices
from tests.trace.memory import memory_spans


class TracedServices(FakeServices):
    """Remembers the trace context each command would have been sent with."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts: list[dict[str, str]] = []

    async def ask(self, service: str, command: Command | AnonymousCommand) -> Accepted | Rejected:
        self.contexts.append(trace_headers())
        return await super().ask(service, command)


@pytest.fixture
def services() -> TracedServices:
    return TracedServices()


@pytest.fixture
def browser(services: TracedServices) -> Iterator[TestClient]:
    gateway = Gateway(panel=Panel(services), pages=Pages(), forms=FormKeys(b"k" * 32),
                      verifier=TokenVerifier(load_public_key(PUBLIC_KEY)), attempts=AttemptLimit(5, 300))
    app = UntrustedTraceContext(build_app(gateway))  # as services/gateway/entrypoint.py does
    with TestClient(app, base_url="https://panel.example", follow_redirects=False) as client:
        yield client


def test_the_request_span_is_the_parent_of_the_command_it_sends(browser, services):
    """Ensure a sign-in's POST has a server span named after its route, the Login it sends carries that
    span's context, and the password is in none of its attributes."""
    spans = memory_spans()
    page = browser.get("/login")
    nonce = page.text.split('name="nonce" value="')[1].split('"')[0]
    reply = browser.post("/login", data={"login": USER, "password": PASSWORDS[USER], "nonce": nonce},
                         headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    assert reply.status_code == 303

    finished = spans.get_finished_spans()
    [posted] = [s for s in finished if s.name == "POST /login"]
    [context] = services.contexts
    _, trace_id, span_id, _ = context["traceparent"].split("-")
    assert trace_id == f"{posted.context.trace_id:032x}"
    assert posted.context.span_id in ancestors(finished, int(span_id, 16))
    assert posted.parent is None, "a browser's trace context is not trusted"
    assert posted.attributes["http.response.status_code"] == 303
    assert not [s for s in finished if PASSWORDS[USER] in str(dict(s.attributes)) + str(s.events)]


def ancestors(spans: Any, span_id: int) -> list[int]:
    """The span and its ancestors among `spans`, by id."""
    parents = {s.context.span_id: s.parent.span_id if s.parent else None for s in spans}
    found = [span_id]
    while (parent := parents.get(found[-1])) is not None:
        found.append(parent)
    return found


class Exchange:
    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, message: Any, routing_key: str, mandatory: bool) -> None:
        self.published.append(message)


class Channel:
    is_closed = False


async def test_the_client_sends_the_current_context_with_every_command():
    """Ensure a command published under a span carries its W3C context, and one outside any carries none."""
    client = CommandClient(connection=None, user="mailctl")  # type: ignore[arg-type]
    exchange = Exchange()
    client._channel, client._exchange = Channel(), exchange  # type: ignore[assignment]
    memory_spans()
    with span("mailctl Login") as current:
        await client.send("account", Login(login=USER, password="x"))
    await client.send("account", Login(login=USER, password="x"))

    inside, outside = (message.headers for message in exchange.published)
    assert inside["traceparent"].split("-")[2] == f"{current.get_span_context().span_id:016x}"
    assert "traceparent" not in outside and outside["x-account"] == USER
