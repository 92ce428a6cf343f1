"""The mail data pages (copy, its job page, purge) against an in-memory copy job service and notifier:
the flows and their confirmations, no password ever written back into a page, a form token on every
post, and the per-session limit on asking for a job's state."""

import copy
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient

from services.gateway.adapters.pages import Pages
from services.gateway.adapters.web import Gateway
from services.gateway.application.panel import Panel
from services.gateway.domain.forms import FormKeys
from services.gateway.domain.job_polls import PollLimit
from services.gateway.domain.mail_messages import (
    FAILURES,
    FOLDER_SKIPS,
    JOB_KINDS,
    JOB_STATES,
    NOTIFICATION_KINDS,
    NOTIFICATION_STATES,
)
from services.gateway.domain.throttle import AttemptLimit
from shared.auth import TokenVerifier, load_public_key
from shared.contracts.base import Accepted, Rejected
from shared.contracts.copyjob import FailureReason, FolderSkip, JobKind, JobState
from shared.contracts.notifier import NotificationKind
from tests.gateway.unit.conftest import field as form_field
from tests.gateway.unit.conftest import sign_in
from tests.gateway.unit.fakes import ADMIN, PASSWORDS, PUBLIC_KEY, USER, FakeServices

OWN_PASSWORD = PASSWORDS[USER]
SOURCE_PASSWORD = "Source-Secret-77"
OTHER = "hanako@example.jp"
COPY = f"/accounts/{USER}/copy"
PURGE = f"/accounts/{USER}/purge"
VERIFIER = TokenVerifier(load_public_key(PUBLIC_KEY))


@dataclass
class FakeMailServices(FakeServices):
    """The copy job service and the notifier as the pages see them (plus the account service's fake)."""

    plan: str = "business-standard"
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    mails: list[dict[str, Any]] = field(default_factory=list)

    def asked_for(self, kind: str) -> list[Any]:
        return [command for command in self.asked if type(command).__name__ == kind]

    def _GetAccount(self, command: Any) -> Accepted:
        reply = super()._GetAccount(command)
        return Accepted(result={**(reply.result or {}), "plan": self.plan})

    def _refusal(self, command: Any) -> Rejected | None:
        actor = VERIFIER.verify(command.actor_token)
        if not actor.may_act_on(command.address):
            return Rejected(code="forbidden", message="not yours")
        return None

    def _StartCopy(self, command: Any) -> Accepted | Rejected:
        actor = VERIFIER.verify(command.actor_token)
        if actor.is_admin or actor.subject != command.address:
            return Rejected(code="forbidden", message="the user's own only")
        if command.source_host == "bad host":
            return Rejected(code="validation_failed", message="host", errors=(
                _error("source_host", "not_a_host_name"),))
        if command.current_password.get_secret_value() != OWN_PASSWORD:
            return Rejected(code="invalid_credentials", message="no")
        return Accepted(result={"job_id": self.add_job("copy", command.address), "state": "running"})

    def _PurgeMailbox(self, command: Any) -> Accepted | Rejected:
        if refused := self._refusal(command):
            return refused
        if any(job["state"] == "running" for job in self.jobs.values()):
            return Rejected(code="already_running", message="running")
        return Accepted(result={"job_id": self.add_job("purge", command.address), "state": "running"})

    def _GetJob(self, command: Any) -> Accepted | Rejected:
        if refused := self._refusal(command):
            return refused
        job = self.jobs.get(command.job_id) if command.job_id else next(reversed(self.jobs.values()), None)
        if job is None or job["address"] != command.address:
            return Rejected(code="not_found", message="no such job")
        return Accepted(result=copy.deepcopy({k: v for k, v in job.items() if k != "address"}))

    def _CancelJob(self, command: Any) -> Accepted | Rejected:
        job = self.jobs[command.job_id]
        if job["kind"] == "purge":
            return Rejected(code="not_cancellable", message="a purge runs to its end")
        job["state"] = "cancelled"
        return Accepted(result=job)

    def _GetNotifications(self, command: Any) -> Accepted | Rejected:
        if refused := self._refusal(command):
            return refused
        return Accepted(result={"notifications": [m for m in self.mails if m["job_id"] == command.job_id]})

    def _GetRetention(self, command: Any) -> Accepted:
        return Accepted(result={"applies": True, "passes": 3, "queued_period": 7, "last": {
            "period": 7, "as_of": "2026-12-01T00:00:00+00:00", "ran_at": "2026-12-01T03:00:00+00:00",
            "archived": 12, "expunged": 4}})

    def add_job(self, kind: str, address: str, state: str = "running") -> str:
        job_id = uuid.uuid4().hex
        folders = [{"name": "INBOX", "state": "done", "copied": 5, "already_there": 2, "copied_bytes": 900,
                    "too_big": ["INBOX#9 (120000000)"], "refused": [], "refused_more": 0, "flags_dropped": 0,
                    "total": 6, "renamed": False, "skipped": None},
                   {"name": "Projects", "state": "pending", "copied": 1, "already_there": 0, "copied_bytes": 10,
                    "too_big": [], "refused": [], "refused_more": 0, "flags_dropped": 0, "total": 4,
                    "renamed": False, "skipped": None}]
        totals = {"copied": 6, "already_there": 2, "skipped_too_big": 1} if kind == "copy" else {"removed": 6,
                                                                                               "folders_removed": 0}
        self.jobs[job_id] = {"id": job_id, "address": address, "kind": kind, "state": state, "folders": folders,
                             "totals": totals, "reason": None, "limit": None, "source_host": "imap.old.example",
                             "notification_address": address, "started_at": "2026-12-02T10:00:00+00:00",
                             "ended_at": None}
        return job_id


def _error(name: str, code: str) -> Any:
    from shared.contracts.base import FieldError

    return FieldError(field=name, code=code, message=code)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def services() -> FakeMailServices:
    return FakeMailServices()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(services: FakeMailServices, clock: Clock) -> Gateway:
    return Gateway(panel=Panel(services), pages=Pages(), forms=FormKeys(b"k" * 32),
                   verifier=TokenVerifier(load_public_key(PUBLIC_KEY)), attempts=AttemptLimit(5, 300), clock=clock)


def _token(browser: TestClient, path: str) -> str:
    return form_field(browser.get(path).text, "form_token")


def _copy_form(**overrides: str) -> dict[str, str]:
    return {"current_password": OWN_PASSWORD, "source_host": "imap.old.example", "source_port": "993",
            "source_security": "imaps", "source_password": SOURCE_PASSWORD, "notification_address": "me@example.net",
            "step": "run", **overrides}


def _no_password_in(html: str) -> None:
    assert OWN_PASSWORD not in html and SOURCE_PASSWORD not in html
    for tag in re.findall(r"<input[^>]*>", html):
        if 'type="password"' in tag:
            assert "value=" not in tag, tag


def test_a_user_starts_a_copy_and_lands_on_its_job_page(browser: TestClient, services: FakeMailServices) -> None:
    sign_in(browser, USER)
    page = browser.get(COPY)
    assert page.status_code == 200
    assert USER in page.text and 'id="copy-confirm"' in page.text
    assert '<script src="/static/job.js" defer></script>' in page.text
    reply = browser.post(COPY, data={**_copy_form(), "form_token": form_field(page.text, "form_token")})
    assert reply.status_code == 303
    job_id = next(iter(services.jobs))
    assert reply.headers["location"] == f"/accounts/{USER}/jobs/{job_id}?done=copy_accepted"
    [start] = services.asked_for("StartCopy")
    assert (start.address, start.source_host, start.source_port, start.source_security, start.notification_address) == (
        USER, "imap.old.example", 993, "imaps", "me@example.net")
    assert start.source_password.get_secret_value() == SOURCE_PASSWORD
    job = browser.get(reply.headers["location"])
    assert "メールデータコピーの処理を受け付けました" in job.text
    assert "data-running" in job.text and "INBOX" in job.text and "Projects" in job.text


def test_without_javascript_the_confirmation_page_asks_for_the_passwords_again(
        browser: TestClient, services: FakeMailServices) -> None:
    sign_in(browser, USER)
    token = _token(browser, COPY)
    confirm = browser.post(COPY, data={**_copy_form(step="confirm"), "form_token": token})
    assert confirm.status_code == 200 and "確認画面" in confirm.text and "実行する" in confirm.text
    assert 'value="imap.old.example"' in confirm.text and 'value="me@example.net"' in confirm.text
    assert 'name="current_password"' in confirm.text and 'name="source_password"' in confirm.text
    _no_password_in(confirm.text)
    assert services.asked_for("StartCopy") == []
    back = browser.post(COPY, data={**_copy_form(step="edit"), "form_token": token})
    assert 'value="imap.old.example"' in back.text and 'data-confirm' in back.text
    _no_password_in(back.text)


@pytest.mark.parametrize(("change", "field_name"), [
    ({"current_password": "Wrong-Password-1"}, "current_password"),
    ({"source_host": "bad host"}, "source_host"),
    ({"source_port": "nine"}, "source_port"),
    ({"source_host": "h" * 300}, "source_host"),
    ({"notification_address": ""}, "notification_address"),
])
def test_a_refused_copy_shows_the_error_by_its_field_and_no_password(
        browser: TestClient, services: FakeMailServices, change: dict[str, str], field_name: str) -> None:
    sign_in(browser, USER)
    reply = browser.post(COPY, data={**_copy_form(**change), "form_token": _token(browser, COPY)})
    assert reply.status_code == 422
    assert re.search(rf'id="field-{field_name}"[^>]*aria-invalid="true"', reply.text, re.S) or \
        re.search(rf'id="field-{field_name}"[^>]*\n[^>]*aria-invalid="true"', reply.text)
    assert 'role="alert"' in reply.text
    _no_password_in(reply.text)
    assert "Wrong-Password-1" not in reply.text
    assert 'value="imap.old.example"' in reply.text or field_name == "source_host"


def test_an_admin_cannot_start_a_copy(browser: TestClient, services: FakeMailServices) -> None:
    sign_in(browser, ADMIN)
    page = browser.get(COPY)
    assert page.status_code == 200 and "サーバー管理者はメールデータコピーを実行できません" in page.text
    assert 'type="password"' not in page.text
    token = _token(browser, f"/accounts/{USER}/purge")
    refused = browser.post(COPY, data={**_copy_form(), "form_token": token})
    assert refused.status_code == 403 and services.jobs == {}
    _no_password_in(refused.text)


def test_sv_basic_has_no_copy(browser: TestClient, services: FakeMailServices) -> None:
    services.plan = "sv-basic"
    sign_in(browser, USER)
    assert "ご利用いただけません" in browser.get(COPY).text
    top = browser.get("/")
    assert COPY not in top.text and PURGE in top.text


def test_every_post_needs_its_form_token(browser: TestClient, services: FakeMailServices) -> None:
    sign_in(browser, USER)
    job_id = services.add_job("copy", USER)
    for path in (COPY, PURGE, f"/accounts/{USER}/jobs/{job_id}/cancel"):
        assert browser.post(path, data={**_copy_form(), "confirm_address": USER}).status_code == 403
        assert browser.post(path, data={"form_token": "forged"}).status_code == 403
    assert services.asked_for("StartCopy") == services.asked_for("PurgeMailbox") == services.asked_for("CancelJob") == []
    pages = [COPY, f"{PURGE}?step=confirm", f"/accounts/{USER}/jobs/{job_id}", f"/accounts/{USER}/jobs/{job_id}/cancel"]
    for path in pages:
        html = browser.get(path).text
        forms = re.findall(r'<form method="post".*?</form>', html, re.S)
        assert forms, path
        assert all('name="form_token" value="' in form for form in forms), path


def test_the_job_page_shows_each_folder_the_result_and_the_mails(browser: TestClient, services: FakeMailServices,
                                                                  clock: Clock) -> None:
    sign_in(browser, USER)
    job_id = services.add_job("copy", USER)
    page = browser.get(f"/accounts/{USER}/jobs/{job_id}").text
    assert "実行中" in page and "コピーを中止する" in page and "最新の状況に更新" in page
    cells = re.search(r"INBOX</th>(.*?)</tr>", page, re.S)
    assert cells and re.findall(r">([^<>]+)</td>", cells.group(1)) == ["完了", "5", "2", "1"]
    services.jobs[job_id].update(state="completed", ended_at="2026-12-02T10:05:00+00:00")
    services.mails.append({"kind": "copy_completed", "to": "me@example.net", "job_id": job_id, "state": "sent",
                           "attempts": 1, "created_at": "2026-12-02T10:05:01+00:00", "ended_at": "2026-12-02T10:05:02+00:00"})
    clock.now += 60
    done = browser.get(f"/accounts/{USER}/jobs/{job_id}/status").text
    assert done.lstrip().startswith('<div id="job-status"')
    assert "data-running" not in done and "完了" in done and "コピーを中止" not in done
    assert "コピー完了" in done and "me@example.net" in done and "送信済み" in done


def test_a_failed_job_says_why(browser: TestClient, services: FakeMailServices) -> None:
    sign_in(browser, USER)
    job_id = services.add_job("copy", USER)
    services.jobs[job_id].update(state="failed", reason="too_many_folders", limit=40)
    page = browser.get(f"/accounts/{USER}/jobs/{job_id}")
    assert "コピー元のフォルダ数が上限(40 個)を超えています。" in page.text
    browser.cookies.set("lang", "en")
    assert "(at most 40)" in browser.get(f"/accounts/{USER}/jobs/{job_id}/status").text


def test_a_copy_is_cancelled_after_a_confirmation(browser: TestClient, services: FakeMailServices) -> None:
    sign_in(browser, USER)
    job_id = services.add_job("copy", USER)
    confirm = browser.get(f"/accounts/{USER}/jobs/{job_id}/cancel")
    assert "メールデータコピーを中止しますか" in confirm.text and services.asked_for("CancelJob") == []
    reply = browser.post(f"/accounts/{USER}/jobs/{job_id}/cancel", data={"form_token": form_field(confirm.text, "form_token")})
    assert reply.status_code == 303 and reply.headers["location"].endswith("?done=copy_cancelled")
    assert services.jobs[job_id]["state"] == "cancelled"


def test_a_purge_asks_for_the_address_typed_and_is_not_cancellable(browser: TestClient, services: FakeMailServices) -> None:
    sign_in(browser, USER)
    notes = browser.get(PURGE).text
    assert "一部のみ削除することは出来ません" in notes and f"{PURGE}?step=confirm" in notes
    confirm = browser.get(f"{PURGE}?step=confirm").text
    token = form_field(confirm, "form_token")
    wrong = browser.post(PURGE, data={"form_token": token, "confirm_address": "taro@example"})
    assert wrong.status_code == 422 and 'aria-invalid="true"' in wrong.text and services.asked_for("PurgeMailbox") == []
    reply = browser.post(PURGE, data={"form_token": token, "confirm_address": f" {USER.upper()} "})
    assert reply.status_code == 303 and reply.headers["location"].endswith("?done=purge_accepted")
    job = browser.get(reply.headers["location"]).text
    assert "メールデータの削除を受け付けました" in job and "中止できません" in job and "/cancel" not in job
    again = browser.post(PURGE, data={"form_token": token, "confirm_address": USER})
    assert again.status_code == 409 and 'role="alert"' in again.text


def test_a_user_cannot_open_another_accounts_job(browser: TestClient, services: FakeMailServices) -> None:
    job_id = services.add_job("copy", OTHER)
    sign_in(browser, USER)
    assert browser.get(f"/accounts/{OTHER}/jobs/{job_id}").status_code == 403
    assert browser.get(f"/accounts/{USER}/jobs/{job_id}").status_code == 404
    assert browser.get(f"/accounts/{OTHER}/purge").status_code in (200, 403)  # the account service's fake answers any


def test_polling_is_limited_per_session(browser: TestClient, services: FakeMailServices, clock: Clock) -> None:
    sign_in(browser, USER)
    job_id, other_job = services.add_job("copy", USER), services.add_job("copy", USER)
    status = f"/accounts/{USER}/jobs/{job_id}/status"
    for _ in range(3):
        assert browser.get(status).status_code == 200
        clock.now += 1
    asked = len(services.asked_for("GetJob"))
    services.jobs[job_id]["folders"][1]["copied"] = 3
    cached = browser.get(status)
    assert cached.status_code == 200 and len(services.asked_for("GetJob")) == asked
    assert "時点の状況です" in cached.text and "1 / 4" in cached.text
    waiting = browser.get(f"/accounts/{USER}/jobs/{other_job}/status")
    assert waiting.status_code == 429 and int(waiting.headers["Retry-After"]) >= 1
    page = browser.get(f"/accounts/{USER}/jobs/{other_job}")
    assert page.status_code == 429 and "数秒お待ちください" in page.text
    clock.now += 6
    fresh = browser.get(status)
    assert fresh.status_code == 200 and len(services.asked_for("GetJob")) == asked + 1 and "3 / 4" in fresh.text


def test_the_poll_limit_is_per_session_and_bounded() -> None:
    polls = PollLimit[str](2, 10.0)
    polls.record("a", "job", "one", 0.0)
    polls.record("a", "job", "two", 1.0)
    assert polls.wait("a", 2.0) == pytest.approx(8.0) and polls.wait("b", 2.0) == 0.0
    assert polls.last("a", "job") is not None and polls.last("a", "job").state == "two"  # type: ignore[union-attr]
    assert polls.wait("a", 10.5) == 0.0


def test_the_top_page_links_and_shows_the_last_job(browser: TestClient, services: FakeMailServices) -> None:
    sign_in(browser, USER)
    assert "メールデータコピー" in browser.get("/").text and "前回" not in browser.get("/").text
    job_id = services.add_job("copy", USER)
    top = browser.get("/").text
    assert COPY in top and PURGE in top and f"/accounts/{USER}/jobs/{job_id}" in top and "実行中" in top


def test_an_admin_sees_the_retention_passes_and_may_purge(browser: TestClient, services: FakeMailServices) -> None:
    sign_in(browser, ADMIN)
    page = browser.get(f"/admin/accounts/{USER}").text
    assert "180" in page and "31" in page and "アーカイブへ移動 12 通" in page and "ごみ箱から削除 4 通" in page
    assert PURGE in page and COPY not in page
    token = form_field(browser.get(f"{PURGE}?step=confirm").text, "form_token")
    reply = browser.post(PURGE, data={"form_token": token, "confirm_address": USER})
    assert reply.status_code == 303


def test_every_code_the_pages_show_has_its_text() -> None:
    assert set(FAILURES) == set(get_args(FailureReason))
    assert set(FOLDER_SKIPS) == set(get_args(FolderSkip))
    assert set(JOB_STATES) == set(get_args(JobState)) and set(JOB_KINDS) == set(get_args(JobKind))
    assert set(NOTIFICATION_KINDS) == set(get_args(NotificationKind))
    assert set(NOTIFICATION_STATES) == {"pending", "sent", "failed"}


def test_the_job_page_script_may_ask_this_site_only(browser: TestClient, services: FakeMailServices) -> None:
    sign_in(browser, USER)
    policy = browser.get(f"/accounts/{USER}/jobs/{services.add_job('copy', USER)}").headers["content-security-policy"]
    assert "connect-src 'self'" in policy and "script-src 'self'" in policy and "unsafe" not in policy
