"""A server admin in a real browser: lists, searches and pages the accounts of a domain, creates one (the
form follows the plan), sizes it, comments it, sets its password and deletes it after a confirmation."""

import uuid

import pytest

from shared.client import CommandClient
from tests.gateway.browser import Panel
from tests.gateway.integration.conftest import new_account
from tests.support import ADMIN_DOMAIN, ADMIN_LOGIN, ADMIN_PASSWORD, eventually, imap_login

pytestmark = pytest.mark.integration
PASSWORD = "Created-in-the-panel-9!"


async def test_an_admin_lists_searches_and_pages_the_accounts(panel: Panel, client: CommandClient, admin_token: str) -> None:
    prefix = f"p{uuid.uuid4().hex[:6]}"
    made = sorted([await new_account(client, admin_token, PASSWORD, address=f"{prefix}-{n:02}@{ADMIN_DOMAIN}")
                   for n in range(27)])
    panel.sign_in(ADMIN_LOGIN, ADMIN_PASSWORD)
    assert panel.path == "/admin/accounts" and "メールアカウント一覧" in panel.text()
    panel.check("accounts")
    panel.fill(prefix=prefix)
    panel.submit("main form.search button")
    first = [element.text for element in panel.all("table.accounts .address")]
    assert first == made[:25]
    panel.check("accounts-search")
    panel.click('a[rel="next"]')
    assert [element.text for element in panel.all("table.accounts .address")] == made[25:]
    assert not panel.all('a[rel="next"]')


async def test_an_admin_creates_sizes_comments_and_deletes_an_account(panel: Panel) -> None:
    panel.sign_in(ADMIN_LOGIN, ADMIN_PASSWORD)
    panel.open("/admin/accounts/new")
    panel.check("account-new-plans")
    panel.open("/admin/accounts/new?plan=sv-basic")
    assert not panel.all('[name="quota_mb"]'), "sv-basic has no quota"
    panel.open("/admin/accounts/new?plan=business-standard")
    local = f"c{uuid.uuid4().hex[:8]}"
    panel.fill(local_part=local, initial_password="weak", quota_mb="0")
    panel.submit()
    invalid = {element.get_attribute("name") for element in panel.all('[aria-invalid="true"]')}
    assert invalid == {"initial_password", "quota_mb"}, invalid
    assert panel.find('[name="local_part"]').get_attribute("value") == local
    panel.check("account-new-errors")

    panel.fill(initial_password=PASSWORD, quota_mb="2048", comment="営業部")
    panel.submit()
    address = f"{local}@{ADMIN_DOMAIN}"
    assert panel.path.startswith(f"/admin/accounts/{address}") and "メールアカウントの作成が完了しました" in panel.text()
    assert "2048 MB" in panel.text() and "営業部" in panel.text()
    panel.check("account")
    await eventually(lambda: imap_login(address, PASSWORD), timeout=30, what="the new account's mail login")

    panel.fill(quota_mb="4096")
    panel.submit('form[action$="/quota"] button')
    assert "設定容量の変更が完了しました" in panel.text() and "4096 MB" in panel.text()
    panel.fill(comment="総務部")
    panel.submit('form[action$="/comment"] button')
    assert "コメントの変更が完了しました" in panel.text() and "総務部" in panel.text()
    panel.fill(new_password="Set-by-the-admin-42!")
    panel.submit('form[action$="/password"] button')
    assert "パスワードの変更が完了しました" in panel.text()
    await eventually(lambda: imap_login(address, "Set-by-the-admin-42!"), timeout=30, what="the admin's password")

    panel.click('a.button.danger')
    assert "削除しますか" in panel.text()
    panel.check("account-delete")
    panel.submit('main form button.danger')
    assert panel.path.startswith("/admin/accounts") and "メールアカウントの削除が完了しました" in panel.text()
    panel.check("account-deleted")


async def test_the_admin_pages_in_english(panel: Panel) -> None:
    panel.open("/lang/en?next=/login")
    panel.sign_in(ADMIN_LOGIN, ADMIN_PASSWORD)
    assert panel.lang == "en" and "Mail accounts" in panel.text()
    panel.check("accounts")
    panel.open("/admin/accounts/new?plan=sv-basic")
    panel.fill(local_part="bad address!", initial_password="x")
    panel.submit()
    assert panel.all('[aria-invalid="true"]')
    assert not any("\u3040" <= ch <= "\u30ff" for ch in panel.text()), "Japanese left on the English page"
    panel.check("account-new-errors-sv-basic")
    panel.open("/lang/ja?next=/login")
