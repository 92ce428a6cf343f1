"""The mail data pages in a real browser against the real services: a copy from the other provider's
server (tests/source_server.py) started from the page and followed to its end on the job page, its
notification mail sent; a purge from the page empties the mailbox; an admin may purge but not copy; a
user cannot open another's job. Every page in Japanese and in English (saved, 375 px, axe-core)."""

import re
from urllib.parse import quote

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from services.copyjob.adapters.imap import Session
from shared.client import CommandClient
from shared.contracts.copyjob import SERVICE as COPYJOB
from shared.contracts.copyjob import StartCopy
from tests.gateway.browser import Panel
from tests.gateway.integration.conftest import new_account
from tests.support import ADMIN_LOGIN, ADMIN_PASSWORD, deliver, eventually, exported_text, subjects_in
from tests.trace.clicks import click_trace

pytestmark = pytest.mark.integration
PASSWORD = "Mail-Pages-Password-1"
SOURCE_PASSWORD = "Source-Secret-2026"
WRONG_PASSWORD = "Not-My-Password-77!"
NOTIFY = "watcher@example.net"
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
ENDED = {"ja": ("完了", "エラー", "中止"), "en": ("Completed", "Failed", "Cancelled")}


def checked(panel: Panel, name: str) -> None:
    """The page as it is now, in its language; no Japanese left on an English page."""
    if panel.lang == "en":
        shown = panel.text("body").replace("日本語", "")
        assert not JAPANESE.search(shown), f"{name}: Japanese on the English page: {JAPANESE.findall(shown)[:10]}"
    panel.check(name)


def in_both(panel: Panel, name: str) -> None:
    """The page (GET) checked in Japanese, then in English; left in Japanese."""
    path = panel.path
    for language in ("ja", "en"):
        panel.open(f"/lang/{language}?next={quote(path, safe='')}")
        assert panel.lang == language
        checked(panel, name)
    panel.open(f"/lang/ja?next={quote(path, safe='')}")


def ended(panel: Panel, language: str, timeout: float = 60) -> str:
    """The job page's state once the job ended (static/job.js refreshes it)."""
    WebDriverWait(panel.driver, timeout).until(
        lambda driver: any(word in panel.text("#job-status .job-state") for word in ENDED[language]))
    return panel.text("#job-status .job-state")


async def _fill_source(address: str, port: int) -> None:
    source = await Session.open("127.0.0.1", port, tls=None, server_hostname=None, user=address, password=SOURCE_PASSWORD)
    try:
        await source.create("Projects")
        for folder, subject in (("INBOX", "from the old server"), ("INBOX", "second"), ("Projects", "a project")):
            await source.append(folder, f"Subject: {subject}\r\nMessage-ID: <{subject}@old>\r\n\r\nbody\r\n".encode(),
                                ("\\Seen",), "1500000000")
    finally:
        await source.close()


def _fill_copy_form(panel: Panel, own_password: str, port: int) -> None:
    if panel.find("details.more").get_attribute("open") is None:
        panel.find("details.more summary").click()
    panel.fill(current_password=own_password, source_host="localhost", source_port=str(port),
               source_password=SOURCE_PASSWORD, notification_address=NOTIFY)


def _confirm_in_place(panel: Panel) -> None:
    panel.find("[data-confirm]").click()  # no page load: the confirmation is shown in place
    assert panel.find("#copy-confirm").is_displayed() and not panel.find("#copy-fields").is_displayed()


def _no_password_shown(panel: Panel) -> None:
    source = panel.driver.page_source
    assert PASSWORD not in source and SOURCE_PASSWORD not in source and WRONG_PASSWORD not in source
    assert all(element.get_attribute("value") == "" for element in panel.all('input[type="password"]'))


async def test_a_copy_started_from_the_page_is_followed_to_its_end_and_its_mail_sent(
        panel: Panel, client: CommandClient, admin_token: str, copyjob_service, notifier_service, source_server,
        smtp_sink, spans_dir) -> None:
    address = await new_account(client, admin_token, PASSWORD)
    await source_server.add_user(address, SOURCE_PASSWORD)
    await _fill_source(address, source_server.port)
    copy = f"/accounts/{address}/copy"
    panel.sign_in(address, PASSWORD)
    assert copy in panel.driver.page_source
    in_both(panel, "top-mail")

    panel.open(copy)
    assert address in panel.text("#source-address")
    in_both(panel, "copy")
    for language in ("ja", "en"):  # a wrong own password: said by its field, no password written back
        panel.open(f"/lang/{language}?next={quote(copy, safe='')}")
        _fill_copy_form(panel, WRONG_PASSWORD, source_server.tls_port)
        _confirm_in_place(panel)
        assert panel.text("[data-echo=source_host]") == "localhost" and NOTIFY in panel.text("#copy-confirm")
        checked(panel, "copy-confirm")
        panel.click("#copy-confirm button[value=run]")
        assert panel.find("#field-current_password").get_attribute("aria-invalid") == "true"
        assert panel.find("#field-notification_address").get_attribute("value") == NOTIFY
        _no_password_shown(panel)
        checked(panel, "copy-refused")
    panel.open(f"/lang/ja?next={quote(copy, safe='')}")

    _fill_copy_form(panel, PASSWORD, source_server.tls_port)
    _confirm_in_place(panel)
    panel.click("#copy-confirm button[value=run]")
    assert "/jobs/" in panel.path and "メールデータコピーの処理を受け付けました" in panel.text()
    job_path = panel.path.partition("?")[0]
    in_both(panel, "job-accepted")
    assert ended(panel, "ja") == "完了"
    assert "from the old server" in subjects_in(address, "INBOX") and "a project" in subjects_in(address, "Projects")
    rows = {row.find_element("css selector", "th").text: row.text for row in panel.all("table.jobs tbody tr")}
    assert set(rows) >= {"INBOX", "Projects"} and "完了 2 0 0" in rows["INBOX"], rows

    await eventually(lambda: _async(bool(smtp_sink.to(NOTIFY))), timeout=30, what="the notification mail")
    assert "メールデータコピーが完了いたしました" in _subject(smtp_sink.to(NOTIFY)[0])
    click, found = await click_trace(spans_dir, "POST /accounts/", "StartCopy", "VerifyPassword", "CopyFolder",
                                     "JobCompleted", "SMTP send")
    assert found.ancestors(found.one("SMTP send"))[-1] == click["name"], "the click is the root of the mail it led to"
    assert PASSWORD not in exported_text(spans_dir) and SOURCE_PASSWORD not in exported_text(spans_dir)
    WebDriverWait(panel.driver, 40).until(lambda driver: "送信済み" in panel.text("#job-status"))
    panel.open(job_path)
    in_both(panel, "job-completed")
    panel.open(f"{job_path}/cancel")
    in_both(panel, "job-cancel-ended")


async def test_a_purge_from_the_page_empties_the_mailbox_and_another_user_cannot_open_its_job(
        panel: Panel, client: CommandClient, admin_token: str, copyjob_service) -> None:
    address = await new_account(client, admin_token, PASSWORD)
    other = await new_account(client, admin_token, PASSWORD)
    for n in range(3):
        assert deliver(address, subject=f"old {n}")
    purge = f"/accounts/{address}/purge"
    panel.sign_in(address, PASSWORD)
    panel.open(purge)
    in_both(panel, "purge")
    panel.click("main a.button.danger")
    assert panel.path == f"{purge}?step=confirm"
    in_both(panel, "purge-confirm")
    for language in ("en", "ja"):
        panel.open(f"/lang/{language}?next={quote(purge + '?step=confirm', safe='')}")
        panel.fill(confirm_address="someone@example.jp")
        panel.submit()
        assert panel.find("#field-confirm_address").get_attribute("aria-invalid") == "true"
        checked(panel, "purge-mistyped")
    assert subjects_in(address, "INBOX") == ["old 0", "old 1", "old 2"]
    panel.fill(confirm_address=address)
    panel.submit()
    assert "/jobs/" in panel.path and "メールデータの削除を受け付けました" in panel.text()
    job_path = panel.path.partition("?")[0]
    assert ended(panel, "ja") == "完了"
    assert "/cancel" not in panel.driver.page_source
    assert not [subject for subject in subjects_in(address, "INBOX") if subject.startswith("old ")]
    in_both(panel, "purge-completed")

    panel.sign_out()
    panel.sign_in(other, PASSWORD)
    panel.open(job_path)
    assert panel.all(".error-summary") and not panel.all("#job-status")
    in_both(panel, "job-of-another")


async def test_an_admin_may_purge_and_see_the_retention_but_not_copy(
        panel: Panel, client: CommandClient, admin_token: str, copyjob_service) -> None:
    address = await new_account(client, admin_token, PASSWORD)
    panel.sign_in(ADMIN_LOGIN, ADMIN_PASSWORD)
    panel.open(f"/admin/accounts/{address}")
    section = panel.text("section[aria-labelledby=mail-data-title]")
    assert "180" in section and "31" in section and "まだ実行されていません" in section
    assert f"/accounts/{address}/purge" in panel.driver.page_source
    assert f"/accounts/{address}/copy" not in panel.driver.page_source
    in_both(panel, "account-mail")
    panel.open(f"/accounts/{address}/copy")
    assert "サーバー管理者はメールデータコピーを実行できません" in panel.text() and not panel.all('input[type="password"]')
    in_both(panel, "copy-admin")
    panel.open(f"/accounts/{address}/purge?step=confirm")
    assert panel.all("#field-confirm_address")
    refused = await client.request(COPYJOB, StartCopy(
        actor_token=admin_token, address=address, current_password=ADMIN_PASSWORD, source_host="localhost",
        source_password=SOURCE_PASSWORD, notification_address=NOTIFY))
    assert refused.status == "rejected" and refused.code == "forbidden"


async def _async(value: bool) -> bool:
    return value


def _subject(raw: bytes) -> str:
    import email
    import email.header

    header = email.message_from_bytes(raw)["Subject"] or ""
    return str(email.header.make_header(email.header.decode_header(header)))


async def test_mail_delivered_while_a_purge_from_the_page_runs_is_kept(
        panel: Panel, client: CommandClient, admin_token: str, copyjob_service) -> None:
    """The purge removes what was there when it started: a message delivered meanwhile (the copy job held
    still mid-purge, so it surely is) is the one left when the page says it is done."""
    from tests.copyjob.integration.test_purge import _fill, _folders

    address = await new_account(client, admin_token, PASSWORD)
    old = 1500
    await _fill(address, old)
    panel.sign_in(address, PASSWORD)
    panel.open(f"/accounts/{address}/purge?step=confirm")
    panel.fill(confirm_address=address)
    panel.submit()
    assert "/jobs/" in panel.path

    async def under_way() -> bool:
        return (await _folders(address))["INBOX"] < old

    await eventually(under_way, what="the purge under way")
    with copyjob_service.paused():
        assert deliver(address, subject="arrived during the purge")
        await eventually(lambda: _async("arrived during the purge" in subjects_in(address, "INBOX")),
                         what="the delivery")
    assert ended(panel, "ja", timeout=120) == "完了"
    assert [s for s in subjects_in(address, "INBOX") if not s.startswith("【重要】")] == ["arrived during the purge"]
