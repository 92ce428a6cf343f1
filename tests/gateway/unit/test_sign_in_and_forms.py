"""Sign-in, cookies, form tokens, cross-site posts, security headers and languages, page by page."""

import time

from fastapi.testclient import TestClient

from services.gateway.adapters.web import SESSION_COOKIE
from services.gateway.domain.forms import FormKeys
from services.gateway.domain.languages import from_accept_language
from shared.contracts.account import ChangePassword, Login, SignOutEverywhere
from shared.contracts.base import Rejected
from tests.gateway.unit.conftest import ATTEMPTS, field, form_token, sign_in
from tests.gateway.unit.fakes import ADMIN, PASSWORDS, USER, FakeServices


def cookie_header(response: object, name: str) -> str:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    return next(header for header in headers if header.startswith(name + "="))


def test_a_user_signs_in_into_a_host_only_secure_cookie_and_lands_on_the_top_page(browser: TestClient) -> None:
    page = browser.get("/login")
    presession = cookie_header(page, "__Host-presession")
    assert all(part in presession for part in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"))
    reply = browser.post("/login", data={"login": USER, "password": PASSWORDS[USER], "nonce": field(page.text, "nonce")})
    assert reply.status_code == 303 and reply.headers["location"] == "/"
    session = cookie_header(reply, SESSION_COOKIE)
    assert all(part in session for part in ("Secure", "HttpOnly", "SameSite=strict", "Path=/", "Max-Age="))
    assert "Domain=" not in session
    assert USER in browser.get("/").text


def test_an_admin_lands_on_the_account_list(browser: TestClient) -> None:
    page = browser.get("/login")
    reply = browser.post("/login", data={"login": ADMIN, "password": PASSWORDS[ADMIN], "nonce": field(page.text, "nonce")})
    assert reply.headers["location"] == "/admin/accounts"


def test_a_wrong_password_is_said_in_japanese_and_never_echoed(browser: TestClient) -> None:
    page = browser.get("/login")
    reply = browser.post("/login", data={"login": USER, "password": "Wrong-but-secret-1", "nonce": field(page.text, "nonce")})
    assert reply.status_code == 401
    assert "ログイン ID またはパスワードが正しくありません。" in reply.text
    assert "Wrong-but-secret-1" not in reply.text and f'value="{USER}"' in reply.text
    assert SESSION_COOKIE not in reply.headers.get("set-cookie", "")


def test_a_sign_in_without_the_pages_nonce_is_refused_before_the_services_hear_of_it(
        browser: TestClient, services: FakeServices) -> None:
    browser.get("/login")
    forged = FormKeys(b"another key, another site........").sign_in_nonce("x", time.time())
    for nonce in ("", forged, "1.abc"):
        reply = browser.post("/login", data={"login": USER, "password": PASSWORDS[USER], "nonce": nonce})
        assert reply.status_code == 400
    assert not services.asked


def test_sign_in_attempts_are_limited_per_instance(browser: TestClient, services: FakeServices) -> None:
    for _ in range(ATTEMPTS + 3):
        page = browser.get("/login")
        last = browser.post("/login", data={"login": USER, "password": "nope", "nonce": field(page.text, "nonce")})
    assert last.status_code == 429 and "ログインの試行回数が多すぎます" in last.text
    assert sum(isinstance(command, Login) for command in services.asked) == ATTEMPTS


def test_every_page_carries_the_security_headers(browser: TestClient) -> None:
    sign_in(browser, USER)
    for path in ("/login", "/", "/password", "/no-such-page"):
        headers = browser.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe" not in policy and "frame-ancestors 'none'" in policy
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin" and headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in headers


def test_a_post_without_this_sessions_form_token_changes_nothing(browser: TestClient, services: FakeServices) -> None:
    sign_in(browser, USER)
    asked = len(services.asked)
    for token in (None, "", "0" * 64):
        data = {"current_password": "a", "new_password": "Long-enough-9!", "new_password_confirm": "Long-enough-9!"}
        reply = browser.post("/password", data=data if token is None else {**data, "form_token": token})
        assert reply.status_code == 403
    assert not any(isinstance(command, ChangePassword) for command in services.asked[asked:])


def test_a_cross_site_post_is_refused_even_with_a_good_token(browser: TestClient, services: FakeServices) -> None:
    sign_in(browser, USER)
    token = form_token(browser)
    data = {"form_token": token, "current_password": PASSWORDS[USER], "new_password": "Long-enough-9!",
            "new_password_confirm": "Long-enough-9!"}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        assert browser.post("/password", data=data, headers=headers).status_code == 403
    assert not any(isinstance(command, ChangePassword) for command in services.asked)


def test_pages_need_a_session_and_an_expired_one_says_so(browser: TestClient) -> None:
    reply = browser.get("/")
    assert reply.status_code == 303 and reply.headers["location"] == "/login?notice=sign_in_first"
    browser.cookies.set(SESSION_COOKIE, "not.a.token", domain="panel.example")
    reply = browser.get("/password")
    assert reply.headers["location"] == "/login?notice=expired"
    assert 'Max-Age=0' in cookie_header(reply, SESSION_COOKIE) or "expires=" in cookie_header(reply, SESSION_COOKIE)


def test_logging_out_on_every_device_ends_every_session_of_the_login(browser: TestClient, services: FakeServices) -> None:
    sign_in(browser, USER)
    reply = browser.post("/logout/everywhere", data={"form_token": form_token(browser, "/")})
    assert reply.headers["location"] == "/login?notice=signed_out_everywhere"
    assert [(type(c).__name__, c.login) for c in services.asked if isinstance(c, SignOutEverywhere)] == [
        ("SignOutEverywhere", USER)]
    assert browser.get("/").headers["location"] == "/login?notice=sign_in_first"


def test_a_session_the_services_refuse_ends_here_too(browser: TestClient, services: FakeServices) -> None:
    sign_in(browser, USER)
    services.refuse_with = Rejected(code="unauthenticated", message="ended")
    reply = browser.get("/")
    assert reply.headers["location"] == "/login?notice=ended"
    assert "ログイン状態が終了しました" in browser.get("/login?notice=ended").text


def test_japanese_by_default_english_by_the_browser_or_the_switch(browser: TestClient) -> None:
    assert '<html lang="ja">' in browser.get("/login").text
    english = browser.get("/login", headers={"Accept-Language": "en-US,en;q=0.9,ja;q=0.5"}).text
    assert '<html lang="en">' in english and "Log in" in english
    switched = browser.get("/lang/en", params={"next": "/login"})
    assert switched.headers["location"] == "/login"
    assert '<html lang="en">' in browser.get("/login").text
    assert browser.get("/lang/ja", params={"next": "//evil.example/x"}).headers["location"] == "/"


def test_accept_language_follows_quality_values() -> None:
    assert from_accept_language("en;q=0.4, ja;q=0.8") == "ja"
    assert from_accept_language("fr, en;q=0.5") == "en"
    assert from_accept_language("fr") == "ja" and from_accept_language("en;q=abc") == "ja"
