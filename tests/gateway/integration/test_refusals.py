"""What the real gateway refuses, over plain HTTP as an attacker would send it: admin pages for a user,
another domain's account through a tampered form, a post without its form token or from another site,
an expired session."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.auth import TokenIssuer, load_private_key
from shared.client import CommandClient
from shared.contracts.account import SERVICE, GetAccount
from tests.gateway.integration.conftest import new_account
from tests.gateway.visitor import Visitor, field
from tests.support import ADMIN_LOGIN, ADMIN_PASSWORD, FrontProcess, new_address

pytestmark = pytest.mark.integration
PASSWORD = "Refusals-Password-77"


async def test_a_user_cannot_open_admin_pages_or_post_to_them(
        gateway: FrontProcess, client: CommandClient, admin_token: str) -> None:
    address = await new_account(client, admin_token, PASSWORD)
    victim = await new_account(client, admin_token, PASSWORD)
    user = Visitor(gateway.url)
    user.sign_in(address, PASSWORD)
    token = field(user.get("/password").text, "form_token")
    for path in ("/admin/accounts", f"/admin/accounts/{victim}", "/admin/accounts/new"):
        page = user.get(path)
        assert page.status_code == 403 and "この画面はサーバー管理者用です。" in page.text
    refused = user.post(f"/admin/accounts/{victim}/comment", {"form_token": token, "comment": "hijacked"})
    assert refused.status_code == 403
    after = await client.request(SERVICE, GetAccount(actor_token=admin_token, address=victim))
    assert after.status == "accepted" and after.result["comment"] == ""


async def test_an_admin_cannot_reach_another_domain_through_a_tampered_form(gateway: FrontProcess) -> None:
    outsider = new_address("other.example")
    admin = Visitor(gateway.url)
    admin.sign_in(ADMIN_LOGIN, ADMIN_PASSWORD)
    token = field(admin.get("/admin/accounts").text, "form_token")
    for change, data in (("comment", {"comment": "tampered"}), ("quota", {"quota_mb": "1"}),
                         ("password", {"new_password": "Tampered-Password-1!"}), ("delete", {})):
        refused = admin.post(f"/admin/accounts/{outsider}/{change}", {"form_token": token, **data})
        assert refused.status_code == 403, change
        assert "このアカウントに対してこの操作をおこなう権限がありません。" in refused.text
    assert admin.get(f"/admin/accounts/{outsider}").status_code == 403


async def test_posts_without_the_form_token_or_from_another_site_change_nothing(
        gateway: FrontProcess, client: CommandClient, admin_token: str) -> None:
    address = await new_account(client, admin_token, PASSWORD)
    admin = Visitor(gateway.url)
    admin.sign_in(ADMIN_LOGIN, ADMIN_PASSWORD)
    token = field(admin.get("/admin/accounts").text, "form_token")
    path = f"/admin/accounts/{address}/comment"
    assert admin.post(path, {"comment": "no token"}).status_code == 403
    assert admin.post(path, {"comment": "forged", "form_token": "0" * 64}).status_code == 403
    assert admin.post(path, {"comment": "cross", "form_token": token}, {"Origin": "https://evil.example"}).status_code == 403
    assert admin.post(path, {"comment": "cross", "form_token": token}, {"Sec-Fetch-Site": "cross-site"}).status_code == 403
    after = await client.request(SERVICE, GetAccount(actor_token=admin_token, address=address))
    assert after.status == "accepted" and after.result["comment"] == ""
    assert admin.post(path, {"comment": "kept", "form_token": token}).status_code == 303


async def test_an_expired_session_goes_back_to_the_login_page(gateway: FrontProcess, keys: tuple[str, str]) -> None:
    expired = TokenIssuer(load_private_key(keys[0]), timedelta(hours=1)).issue(
        subject=ADMIN_LOGIN, role="admin", domains=frozenset({"example.jp"}), now=datetime.now(UTC) - timedelta(hours=3))[0]
    visitor = Visitor(gateway.url)
    visitor.cookies["__Host-session"] = expired
    page = visitor.get("/admin/accounts")
    assert page.status_code == 303 and page.headers["location"] == "/login?notice=expired"
    assert "ログインの有効期限が切れました" in visitor.get("/login?notice=expired").text
