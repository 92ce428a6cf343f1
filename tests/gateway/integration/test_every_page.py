"""Every page of the panel in Japanese and in English, as a user and as an admin: saved as a screenshot,
checked at a phone's width and by axe-core, and no Japanese left on an English page."""

import re

import pytest

from shared.client import CommandClient
from tests.gateway.browser import Panel
from tests.gateway.integration.conftest import new_account
from tests.support import ADMIN_LOGIN, ADMIN_PASSWORD

pytestmark = pytest.mark.integration
PASSWORD = "Every-Page-Password-1"
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def seen(panel: Panel, name: str, language: str) -> None:
    assert panel.lang == language, f"{name} is in {panel.lang}"
    if language == "en":
        shown = panel.text("body").replace("日本語", "")  # the switch to Japanese says so in Japanese
        assert not JAPANESE.search(shown), f"{name}: Japanese on the English page: {JAPANESE.findall(shown)[:10]}"
    panel.check(name)


@pytest.mark.parametrize("language", ["ja", "en"])
async def test_every_page_in_both_languages(panel: Panel, client: CommandClient, admin_token: str, language: str) -> None:
    address = await new_account(client, admin_token, PASSWORD)
    panel.open(f"/lang/{language}?next=/login")
    seen(panel, "login", language)

    panel.sign_in(ADMIN_LOGIN, ADMIN_PASSWORD)
    for name, path in (("accounts", "/admin/accounts"), ("account-new-plans", "/admin/accounts/new"),
                       ("account-new-kwc", "/admin/accounts/new?plan=kwc"),
                       ("account-new-sv-basic", "/admin/accounts/new?plan=sv-basic"),
                       ("account", f"/admin/accounts/{address}"), ("account-delete", f"/admin/accounts/{address}/delete"),
                       ("not-found", "/no-such-page")):
        panel.open(path)
        seen(panel, name, language)
    panel.sign_out()
    seen(panel, "signed-out", language)

    panel.sign_in(address, PASSWORD)
    for name, path in (("top", "/"), ("password", "/password"), ("admins-only", "/admin/accounts")):
        panel.open(path)
        seen(panel, name, language)
    panel.open("/lang/ja?next=/login")
