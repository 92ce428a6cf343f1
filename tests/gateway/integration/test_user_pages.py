"""A user in a real browser: signs in, sees the account, changes the password (every broken rule at once),
is signed out, signs in with the new one; the mail server follows; logout ends the session everywhere."""

import pytest

from shared.client import CommandClient
from shared.contracts.account import SERVICE, GetAccount
from tests.gateway.browser import Panel
from tests.gateway.integration.conftest import new_account
from tests.support import eventually, imap_login

pytestmark = pytest.mark.integration
PASSWORD = "Start-Password-2026"
NEW_PASSWORD = "Second-Password-2027!"
BASIC_PASSWORD = "Basic-pass-2026"


async def test_a_user_changes_the_password_and_the_mail_server_follows(
        panel: Panel, client: CommandClient, admin_token: str) -> None:
    address = await new_account(client, admin_token, PASSWORD)

    panel.open("/login")
    assert panel.lang == "ja" and "ログイン" in panel.text()
    panel.check("login")
    panel.fill(login=address, password="Not-The-Password-1")
    panel.submit()
    assert "ログイン ID またはパスワードが正しくありません。" in panel.text(".error-summary")
    assert panel.find('[name="password"]').get_attribute("value") == ""
    panel.check("login-refused")

    panel.fill(password=PASSWORD)
    panel.submit()
    assert panel.path == "/", panel.text()
    assert address in panel.text() and "ビジネス スタンダード" in panel.text() and "1024 MB" in panel.text()
    panel.check("top")

    panel.open("/password")
    panel.check("password")
    panel.fill(current_password="Wrong-current-1", new_password="short", new_password_confirm="other")
    panel.submit()
    assert panel.find("#field-new_password_confirm").get_attribute("aria-invalid") == "true"
    panel.fill(current_password=PASSWORD, new_password="short", new_password_confirm="short")
    panel.submit()
    errors = panel.all('[aria-invalid="true"]')
    assert [element.get_attribute("name") for element in errors] == ["new_password"]
    assert len(panel.all(".error-summary li")) >= 2, "every broken rule is listed at once"
    described = panel.find("#field-new_password").get_attribute("aria-describedby") or ""
    assert all(panel.find(f"#{name}").text for name in described.split() if name.startswith("error-"))
    panel.check("password-errors")

    panel.fill(current_password=PASSWORD, new_password=NEW_PASSWORD, new_password_confirm=NEW_PASSWORD)
    panel.submit()
    assert panel.path.startswith("/login") and "パスワードの変更が完了しました" in panel.text()
    panel.check("password-changed")
    await eventually(lambda: imap_login(address, NEW_PASSWORD), timeout=30, what="the new password over IMAP")
    assert not await imap_login(address, PASSWORD)

    panel.sign_in(address, NEW_PASSWORD)
    assert panel.path == "/"
    token = panel.session_token()
    panel.sign_out()
    assert panel.path.startswith("/login") and "ログアウトしました" in panel.text()
    replayed = await client.request(SERVICE, GetAccount(actor_token=token, address=address))
    assert replayed.status == "rejected" and replayed.code == "unauthenticated"


async def test_every_user_page_in_english_too(panel: Panel, client: CommandClient, admin_token: str) -> None:
    address = await new_account(client, admin_token, BASIC_PASSWORD, plan="sv-basic", quota_mb=None)
    panel.open("/login")
    panel.switch_language()
    assert panel.lang == "en" and "Log in" in panel.text()
    panel.check("login")
    panel.sign_in(address, BASIC_PASSWORD)
    assert "Shared plan SV-Basic" in panel.text() and "No limit" in panel.text()
    panel.check("top-sv-basic")
    panel.open("/password")
    panel.fill(current_password=BASIC_PASSWORD, new_password="abc", new_password_confirm="abc")
    panel.submit()
    assert panel.lang == "en" and panel.all('[aria-invalid="true"]')
    assert not any("\u3040" <= ch <= "\u30ff" for ch in panel.text()), "Japanese left on the English page"
    panel.check("password-errors-sv-basic")
    panel.switch_language()
    assert panel.lang == "ja"
