"""The mail settings pages in a real browser against the real services and mail server: what a user sets
on the page is what the mail does (spam tagged and filed, a forward at the SMTP sink, one autoreply), an
admin changes a user's settings, a user cannot open another's; every page in Japanese and English."""

import asyncio

import pytest

from shared.client import CommandClient
from shared.contracts.rules import SERVICE, GetRules
from tests.gateway.browser import Panel
from tests.gateway.integration.test_every_page import seen
from tests.rules.mail_world import BASIC, GTUBE, STRONG, at_sink, in_mailbox, outside, rules_account, send
from tests.support import ADMIN_LOGIN, ADMIN_PASSWORD, eventually

pytestmark = pytest.mark.integration
OK = "main form button[type=submit]"
JA_FORBIDDEN = "このアカウントに対してこの操作をおこなう権限がありません。"


async def rules_of(client: CommandClient, token: str, address: str) -> dict:
    reply = await client.request(SERVICE, GetRules(actor_token=token, address=address))
    assert reply.status == "accepted", reply
    return dict(reply.result)


async def applied(client: CommandClient, token: str, address: str) -> dict:
    """The rules once the mail server runs them (what the top page says too)."""
    found: dict = {}

    async def on_the_mail_server() -> bool:
        found.update(await rules_of(client, token, address))
        return found["mail_server"]["state"] == "applied"

    await eventually(on_the_mail_server, what=f"{address}'s rules on the mail server")
    return found


def confirm(panel: Panel, link: str, name: str) -> None:
    """Click the link to a confirmation page, look at it, press 【OK】."""
    panel.click(link)
    assert panel.path.split("?")[0].count("/") >= 3, panel.path
    panel.check(name)
    panel.submit(OK)


async def test_what_a_user_sets_on_the_pages_is_what_the_mail_does(
        panel: Panel, client: CommandClient, admin_token: str, rules_service, smtp_sink) -> None:
    address = await rules_account(client, admin_token)
    base = f"/accounts/{address}"
    panel.sign_in(address, STRONG)
    assert panel.path == "/" and "スパムメール件名表示" in panel.text() and "未設定" in panel.text()
    panel.check("rules-top")

    confirm(panel, 'a[href$="/spam/tag/on?from=top"]', "rules-spam-tag-confirm")
    assert panel.path.startswith("/?done=") and "スパムメール件名表示を ON に設定しました。" in panel.text()
    panel.open(f"{base}/spam")
    panel.check("rules-spam")
    confirm(panel, 'a[href$="/spam/sort/on"]', "rules-spam-sort-confirm")
    assert "スパムメール自動振分を ON に設定しました。" in panel.text(".done")
    panel.check("rules-spam-done")
    await applied(client, admin_token, address)
    await asyncio.to_thread(send, address, subject="buy now", body=f"{GTUBE}\r\n")
    assert await in_mailbox(address, 1, "Junk") == ["[SPAM] buy now"]

    destination = outside("fwd")
    panel.open(f"{base}/forwarding")
    panel.check("rules-forwarding-empty")
    panel.click('a[href$="/forwarding/new"]')
    panel.find("#destination-1").send_keys(destination)
    panel.click("button[value=more]")
    assert len(panel.all('[name="destination"]')) == 4
    assert panel.find("#destination-1").get_attribute("value") == destination
    panel.check("rules-forward-new")
    panel.click("button[value=add]")
    assert panel.path.endswith("done=forward_added") and destination in panel.text("table")
    panel.check("rules-forwarding")
    await applied(client, admin_token, address)
    await asyncio.to_thread(send, address, subject="pass it on")
    await at_sink(smtp_sink, destination)

    panel.open(f"{base}/autoreply")
    field = panel.find("#field-text")
    field.send_keys("休暇中です〜")
    assert "12 / 600" in panel.text("#text-count") and "〜" in panel.text("#text-refused")
    panel.check("rules-autoreply-typing")
    field.clear()
    field.send_keys("休暇中です。")
    panel.submit(OK)
    assert "自動応答設定を登録しました。" in panel.text(".done") and "設定済み" in panel.text()
    panel.check("rules-autoreply")
    await applied(client, admin_token, address)
    sender = outside("alice")
    for subject in ("first", "second"):
        await asyncio.to_thread(send, address, subject=subject, sender=sender)
    await at_sink(smtp_sink, sender)
    assert sorted(await in_mailbox(address, 3)) == ["first", "pass it on", "second"]
    assert len(smtp_sink.to(sender)) == 1

    panel.open(f"{base}/receive")
    panel.check("rules-receive")
    confirm(panel, 'a[href$="/receive/off"]', "rules-receive-off-confirm")
    assert "メール受信を OFF に設定しました。" in panel.text(".done")
    panel.open(f"{base}/forwarding")
    panel.click('a[href$="/delete"]')
    panel.check("rules-forward-delete-confirm")
    panel.submit(OK)
    assert "新しいメールがどこにも残りません" in panel.text(".error-summary")
    panel.check("rules-forward-delete-loss")
    panel.submit(OK)
    assert "転送設定を削除しました。" in panel.text(".done")
    rules = await rules_of(client, admin_token, address)
    assert (rules["forwards"], rules["receive"]) == ([], False)

    panel.open(f"{base}/receive")
    panel.check("rules-receive-off")
    confirm(panel, 'a[href$="/receive/on"]', "rules-receive-on-confirm")
    assert "メール受信を ON に設定しました。" in panel.text(".done")
    assert (await rules_of(client, admin_token, address))["receive"]
    panel.open(f"{base}/autoreply")
    confirm(panel, 'a[href$="/autoreply/delete"]', "rules-autoreply-delete-confirm")
    assert "自動応答設定を削除しました。" in panel.text(".done")

    panel.open("/lang/en?next=/")
    for name, path in (("rules-top", "/"), ("rules-spam", f"{base}/spam"), ("rules-spam-tag-confirm", f"{base}/spam/tag/off"),
                       ("rules-spam-sort-confirm", f"{base}/spam/sort/off"), ("rules-receive", f"{base}/receive"),
                       ("rules-receive-off-confirm", f"{base}/receive/off"), ("rules-forwarding-empty", f"{base}/forwarding"),
                       ("rules-forward-new", f"{base}/forwarding/new"), ("rules-autoreply", f"{base}/autoreply")):
        panel.open(path)
        seen(panel, name, "en")
    panel.open(f"{base}/receive/off")
    panel.submit(OK)
    assert "New mail would be kept nowhere" in panel.text(".error-summary")
    seen(panel, "rules-receive-loss", "en")
    assert (await rules_of(client, admin_token, address))["receive"]
    panel.open(f"{base}/forwarding/new")
    panel.find("#destination-1").send_keys(outside("en"))
    panel.click("button[value=add]")
    seen(panel, "rules-forwarding", "en")
    panel.open(f"{base}/receive/off")
    panel.submit(OK)
    panel.open(f"{base}/forwarding")
    panel.click('a[href$="/delete"]')
    seen(panel, "rules-forward-delete-confirm", "en")
    panel.submit(OK)
    seen(panel, "rules-forward-delete-loss", "en")
    panel.open(f"{base}/receive/on")
    seen(panel, "rules-receive-on-confirm", "en")
    panel.open(f"{base}/autoreply")
    panel.find("#field-text").send_keys("Away〜")
    seen(panel, "rules-autoreply-typing", "en")
    panel.submit(OK)
    assert "These characters cannot be used: 〜" in panel.text(".error-summary")
    seen(panel, "rules-autoreply-refused", "en")
    panel.find("#field-text").clear()
    panel.find("#field-text").send_keys("Away.")
    panel.submit(OK)
    panel.open(f"{base}/autoreply/delete")
    seen(panel, "rules-autoreply-delete-confirm", "en")
    panel.open("/lang/ja?next=/login")


async def test_an_admin_changes_a_users_settings_and_a_user_cannot_open_anothers(
        panel: Panel, client: CommandClient, admin_token: str, rules_service) -> None:
    user = await rules_account(client, admin_token, plan="sv-basic")
    other = await rules_account(client, admin_token)
    panel.sign_in(ADMIN_LOGIN, ADMIN_PASSWORD)
    panel.open(f"/admin/accounts/{user}")
    panel.click('a[href$="/autoreply"]')
    assert "送信元の本文" in panel.text() and f"対象アカウント:{user}" in panel.text()
    panel.check("rules-autoreply-sv-basic")
    panel.find("#field-text").send_keys("Away until Monday.")
    panel.find("#include-yes").click()  # a radio: no page to wait for
    panel.submit(OK)
    assert "自動応答設定を登録しました。" in panel.text(".done")
    panel.open(f"/accounts/{user}/receive")
    assert "POP 受信" in panel.text()
    panel.check("rules-receive-sv-basic")
    panel.open(f"/accounts/{user}/spam")
    assert "スパムメール自動振分" not in panel.text()
    confirm(panel, 'a[href$="/spam/tag/on"]', "rules-spam-tag-confirm-admin")
    assert "スパムメール件名表示を ON に設定しました。" in panel.text(".done")
    rules = await rules_of(client, admin_token, user)
    assert rules["spam_tag"] and rules["autoreply"] == {"text": "Away until Monday.", "include_original": True}
    panel.sign_out()

    panel.sign_in(user, BASIC)
    panel.check("rules-top-sv-basic")
    assert "POP 受信" in panel.text() and "設定済み" in panel.text()
    panel.open(f"/accounts/{other}/forwarding")
    assert JA_FORBIDDEN in panel.text(".error-summary")
    panel.check("rules-refused")
    panel.open("/lang/en?next=/")
    seen(panel, "rules-top-sv-basic", "en")
    for name, path in (("rules-autoreply-sv-basic", f"/accounts/{user}/autoreply"),
                       ("rules-receive-sv-basic", f"/accounts/{user}/receive"), ("rules-refused", f"/accounts/{other}/spam")):
        panel.open(path)
        seen(panel, name, "en")
    panel.open("/lang/ja?next=/login")
    assert not (await rules_of(client, admin_token, other))["forwards"]
