"""What goes wrong around the pages: the broker away, a bug, odd methods and bodies, odd input, a flood of
sign-ins. Each ends in a page of ours with the security headers, and nothing half-done."""

import asyncio

import pytest
from fastapi.testclient import TestClient

from services.gateway.adapters.broker import BrokerBus
from shared.contracts.account import GetAccount, Login
from shared.contracts.base import Rejected
from tests.gateway.unit.conftest import ATTEMPTS, field, form_token, sign_in
from tests.gateway.unit.fakes import ADMIN, PASSWORDS, USER, FakeServices


class HangingClient:
    """A broker client whose publish never completes (the broker away, the client reconnecting)."""

    connected = False

    async def request(self, *_: object, **__: object) -> None:
        await asyncio.Event().wait()


async def test_a_broker_that_never_answers_is_unavailable_within_the_timeout() -> None:
    services = BrokerBus(timeout_s=0.2)
    services.client = HangingClient()  # type: ignore[assignment]
    reply = await services.ask("account", GetAccount(actor_token="t", address="taro@example.jp"))
    assert isinstance(reply, Rejected) and reply.code == "unavailable"


def test_a_logout_the_services_did_not_hear_says_so(browser: TestClient, services: FakeServices) -> None:
    sign_in(browser, USER)
    token = form_token(browser, "/")
    services.refuse_with = Rejected(code="unavailable", message="no answer")
    reply = browser.post("/logout", data={"form_token": token})
    assert reply.headers["location"] == "/login?notice=logout_not_told"
    services.refuse_with = None
    assert "有効期限まで有効" in browser.get("/login?notice=logout_not_told").text


def test_a_bug_is_a_page_of_ours_with_the_headers(browser: TestClient, services: FakeServices) -> None:
    sign_in(browser, USER)

    def broken(command: object) -> None:
        raise ValueError("a bug")

    services._GetAccount = broken  # type: ignore[method-assign]
    reply = browser.get("/")
    assert reply.status_code == 500 and "<html" in reply.text and "a bug" not in reply.text
    assert reply.headers["content-security-policy"] and reply.headers["cache-control"] == "no-store"


def test_a_method_a_page_does_not_take_is_a_page_too(browser: TestClient) -> None:
    reply = browser.get("/logout")
    assert reply.status_code == 405 and "<html" in reply.text and reply.headers["x-frame-options"] == "DENY"


def test_only_small_url_encoded_forms_are_read(browser: TestClient, services: FakeServices) -> None:
    browser.get("/login")
    multipart = browser.post("/login", files={"login": ("a.txt", b"x" * 10)})
    too_large = browser.post("/login", content=b"login=" + b"x" * 70_000,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (multipart.status_code, too_large.status_code) == (415, 413)
    assert not services.asked


def test_only_failed_sign_ins_count_and_a_wait_is_said(browser: TestClient, services: FakeServices) -> None:
    for _ in range(ATTEMPTS + 2):
        sign_in(browser, USER)
        browser.cookies.clear()
    for _ in range(ATTEMPTS + 1):
        page = browser.get("/login")
        last = browser.post("/login", data={"login": ADMIN, "password": "wrong", "nonce": field(page.text, "nonce")})
    assert last.status_code == 429 and int(last.headers["retry-after"]) > 0
    assert sum(isinstance(c, Login) and c.login == ADMIN for c in services.asked) == ATTEMPTS


def test_a_password_longer_than_any_contract_takes_is_refused_not_cut(browser: TestClient, services: FakeServices) -> None:
    sign_in(browser, USER)
    long = "Aa1!" * 300
    reply = browser.post("/password", data={"form_token": form_token(browser), "current_password": PASSWORDS[USER],
                                             "new_password": long, "new_password_confirm": long})
    assert reply.status_code == 422 and "1024 文字以内で入力してください。" in reply.text
    assert long not in reply.text


@pytest.mark.parametrize("quota", ["²", "①", "1e3", "-5", " "])
def test_a_quota_that_is_no_whole_number_is_refused_at_its_field(browser: TestClient, quota: str) -> None:
    sign_in(browser, ADMIN)
    token = form_token(browser, "/admin/accounts/new?plan=kwc")
    reply = browser.post("/admin/accounts/new", data={"form_token": token, "plan": "kwc", "local_part": "taro",
                                                     "domain": "example.jp", "initial_password": "x", "quota_mb": quota})
    assert reply.status_code == 422 and 'id="field-quota_mb"' in reply.text and 'aria-invalid="true"' in reply.text


def test_a_list_the_service_refuses_is_shown_not_a_500(browser: TestClient, services: FakeServices) -> None:
    sign_in(browser, ADMIN)
    services.refuse_with = Rejected(code="validation_failed", message="bad", errors=())
    reply = browser.get("/admin/accounts", params={"after": "x" * 2000})
    assert reply.status_code == 422 and "入力内容に誤りがあります" in reply.text
