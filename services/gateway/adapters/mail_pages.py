"""The mail data pages (copy from another server, its job page, purge): routes under
/accounts/{address}/..., for the account's user and the admins of its domain.

Copy, as the seed's screens: the form (own password, source server, the account's own address shown
and fixed, source password, notification address) → 【確認する】 → the confirmation → 【実行する】 →
accepted, then the job page. Passwords are never written into a page. The confirmation is made in
place by static/job.js: the form's values are shown (passwords as dots) above 【実行する】, and the
form itself, passwords still typed in, is what is sent. Without JavaScript 【確認する】 posts the form
and the server's confirmation page shows the other values and asks for both passwords again there
(they are not kept between the two screens).

The job page shows a job's folders and result, and its notification mails; static/job.js asks for
its state part (…/jobs/{job_id}/status) every few seconds while the job runs, a "refresh" link does
without JavaScript. How often a session has the copy job service asked for a job (GetJob) from the
job page and its state part is limited (domain/job_polls.py: 3 per 6 s): asked more often, they show
the last state this session had of that job, with its time, or answer 429 (Retry-After) when it has
none. (The top page's and an admin's account page's one GetJob per view is not counted, as their
GetAccount is not.)

Purge: the seed's notes → 【削除】 → the confirmation, where the address is typed → 【OK】 → the job
page. An admin may purge (and see the account's retention passes on its account page) but not copy.
"""

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.gateway.adapters.views import account_view
from services.gateway.adapters.web import PASSWORD_LIMIT, Session, Visit, checked_form, redirect, refused_page, text, visit_of
from services.gateway.application.mail_panel import CopyForm, MailPanel
from services.gateway.domain.job_polls import PollLimit, Seen
from services.gateway.domain.mail_messages import (
    CONFIRM_MISMATCH,
    FAILURES,
    FOLDER_SKIPS,
    FOLDER_STATES,
    JOB_KINDS,
    JOB_STATES,
    NOTIFICATION_KINDS,
    NOTIFICATION_STATES,
    POLLED_TOO_OFTEN,
    WRONG_OWN_PASSWORD,
)
from services.gateway.domain.messages import Explained
from shared.contracts.base import Accepted, FieldError, Rejected
from shared.plans import Capability, Plan, allows

router = APIRouter()
POLL_ASKS = 3
POLL_WINDOW_S = 6.0
"""GetJob at most 3 times per 6 s per session: the page polls every 3 s (static/job.js)"""
POLL_EVERY_S = 3
COPY_FIELDS = ("source_host", "source_port", "source_security", "notification_address")
"""what the copy form may show again (never a password)"""
SECURITIES = ("imaps", "starttls")
ON_THE_FORM = ("validation_failed", "invalid_credentials", "locked", "already_running", "conflict")
"""a StartCopy's refusals the form shows (the others end on the refusal page)"""
MAILED = ("completed", "failed")
"""a job that ended so is told by mail (the notifier's); a cancelled one is not"""
COPY_PLANS = tuple(plan.value for plan in Plan if allows(plan, Capability.MAIL_COPY))
JobState = tuple[Mapping[str, Any], list[Mapping[str, Any]]]
"""a job as GetJob answered, and its notification mails"""


def mail_path(address: str, *rest: str) -> str:
    return "/".join(("/accounts", quote(address, safe="@"), *rest))


def _back_path(visit: Visit, address: str) -> str:
    """Where the pages lead back to: an admin's account page, or the user's top page."""
    from services.gateway.adapters.admin_pages import account_path  # the admin pages show this module's section

    return account_path(address) if visit.signed_in().actor.is_admin else "/"


def _mail(visit: Visit) -> MailPanel:
    return MailPanel(visit.gateway.panel.bus)


async def top_section(visit: Visit, session: Session, address: str) -> Mapping[str, Any]:
    """What the top page's mail section (templates/_top_mail.html) shows of `address`: the links, and
    its running or last job (GetJob without a job id answers it)."""
    return {"copy_plans": COPY_PLANS, "mail_path": mail_path, "job": await _last_job(visit, session, address)}


async def account_section(visit: Visit, session: Session, address: str) -> Mapping[str, Any]:
    """An admin's account page section (templates/_account_mail_links.html): the retention passes and the last job."""
    reply = await _mail(visit).retention(session.token, address)
    retention = reply.result if isinstance(reply, Accepted) else None
    return {"mail_path": mail_path, "retention": _retention_view(retention) if retention else None,
            "job": await _last_job(visit, session, address)}


async def _last_job(visit: Visit, session: Session, address: str) -> dict[str, Any] | None:
    """The running or last job, in brief: asked once per page view like the account itself (not
    counted against the job page's polling)."""
    reply = await _mail(visit).job(session.token, address, None)
    return _job_summary(reply.result) if isinstance(reply, Accepted) else None


# ------------------------------------------------------------------ copy


@router.get("/accounts/{address}/copy")
async def copy_page(request: Request, address: str) -> Response:
    visit = visit_of(request)
    return await _copy_form(visit, address, values={"notification_address": address})


@router.post("/accounts/{address}/copy")
async def copy(request: Request, address: str) -> Response:
    visit = visit_of(request)
    form = await checked_form(visit)
    session = visit.signed_in()
    values = {name: text(form, name, 320).strip() for name in COPY_FIELDS}
    step = text(form, "step", 16)
    if step in ("confirm", "edit"):  # without JavaScript: the confirmation page, or back to the form
        return await _copy_form(visit, address, values=values, stage="confirm" if step == "confirm" else "form")
    port, port_error = _port(values["source_port"])
    if port_error:
        return await _copy_form(visit, address, 422, values, visit.explain(port_error))
    copy_form = CopyForm(current_password=text(form, "current_password", PASSWORD_LIMIT),
                         source_host=values["source_host"], source_password=text(form, "source_password", PASSWORD_LIMIT),
                         notification_address=values["notification_address"], source_port=port,
                         source_security=values["source_security"] or SECURITIES[0])
    reply = await _mail(visit).start_copy(session.token, address, copy_form)
    if isinstance(reply, Rejected):
        if reply.code not in ON_THE_FORM:
            return refused_page(visit, reply)
        return await _copy_form(visit, address, 422, values, _on_copy_form(visit, reply))
    return redirect(mail_path(address, "jobs", str(reply.result["job_id"])), done="copy_accepted")


async def _copy_form(visit: Visit, address: str, status: int = 200, values: Mapping[str, str] | None = None,
                     explained: Explained | None = None, stage: str = "form") -> Response:
    session = visit.signed_in()
    reply = await visit.gateway.panel.account(session.token, address)
    if not isinstance(reply, Accepted):
        return refused_page(visit, reply)
    account = account_view(reply.result, visit.language)
    values = {"source_port": "993", "source_security": SECURITIES[0], **(values or {})}
    return visit.render("mail_copy.html", status=status, account=account, values=values, stage=stage,
                        explained=explained, errors=explained.fields if explained else {}, mail_path=mail_path,
                        back_path=_back_path(visit, address), copyable=account["plan"] in COPY_PLANS,
                        admin=session.actor.is_admin, securities=SECURITIES)


def _port(given: str) -> tuple[int, Rejected | None]:
    """The port field as a number; the service judges its range."""
    if given.isdigit() and len(given) <= 5:
        return int(given), None
    error = FieldError(field="source_port", code="required" if not given else "invalid", message="a port number")
    return 0, Rejected(code="validation_failed", message="the port is not a number", errors=(error,))


def _on_copy_form(visit: Visit, reply: Rejected) -> Explained:
    """A wrong or locked own password is that field's error; a running job, the page's."""
    explained = visit.explain(reply)
    if reply.code == "invalid_credentials":
        wrong = visit.gateway.pages.gettext(visit.language).gettext(WRONG_OWN_PASSWORD)
        return Explained(summary=explained.summary, fields={"current_password": (wrong,)})
    if reply.code == "locked":
        return Explained(summary=explained.summary, fields={"current_password": (explained.summary,)})
    return explained


# ------------------------------------------------------------------ the job page


@router.get("/accounts/{address}/jobs/{job_id}")
async def job_page(request: Request, address: str, job_id: str, done: str | None = None) -> Response:
    visit = visit_of(request)
    return await _shown_job(visit, address, job_id, "mail_job.html", done=visit.notice(done))


@router.get("/accounts/{address}/jobs/{job_id}/status")
async def job_status(request: Request, address: str, job_id: str) -> Response:
    """The job page's state part alone, for static/job.js."""
    return await _shown_job(visit_of(request), address, job_id, "_mail_job_status.html", part=True)


async def _shown_job(visit: Visit, address: str, job_id: str, template: str, *, part: bool = False,
                     **context: Any) -> Response:
    """A page of the job (`template`) as the session may see it now: refused, asked too often, or shown."""
    seen = await _job_state(visit, visit.signed_in(), address, job_id)
    if isinstance(seen, Rejected):
        return refused_page(visit, seen)
    if seen is None:
        return _too_often(visit, "mail_job_wait.html", **({} if part else {"address": address, "job_id": job_id}))
    return visit.render(template, **context, **_job_context(visit, address, seen))


def _too_often(visit: Visit, template: str, **context: Any) -> Response:
    wait = _polls(visit).wait(_session_key(visit.signed_in()), visit.gateway.clock())
    response = visit.render(template, status=429, message=visit.gateway.pages.gettext(visit.language).gettext(
        POLLED_TOO_OFTEN), mail_path=mail_path, **context)
    response.headers["Retry-After"] = str(max(1, round(wait)))
    return response


def _job_context(visit: Visit, address: str, seen: Seen[JobState]) -> dict[str, Any]:
    job, notifications = seen.state
    return {"address": address, "back_path": _back_path(visit, address), "job": _job_view(job),
            "notifications": [_notification_view(n) for n in notifications],
            "as_of": _time(datetime.fromtimestamp(seen.at, UTC).isoformat()), "mail_path": mail_path,
            "poll_every_s": POLL_EVERY_S, "cached": seen.at < visit.gateway.clock() - 0.5,
            "waiting_mail": job.get("state") in MAILED and (
                not notifications or any(n.get("state") == "pending" for n in notifications))}


async def _job_state(visit: Visit, session: Session, address: str, job_id: str) -> Seen[JobState] | Rejected | None:
    """The job and its notifications: asked of the services unless this session asked too often
    lately, then as last seen; None when asked too often and never seen."""
    polls = _polls(visit)
    who, key, now = _session_key(session), f"{address} {job_id}", visit.gateway.clock()
    if polls.wait(who, now) > 0:
        return polls.last(who, key)
    reply = await _mail(visit).job(session.token, address, job_id)
    if isinstance(reply, Rejected) or not reply.result.get("id"):
        polls.asked(who, now)
        return reply if isinstance(reply, Rejected) else Rejected(code="not_found", message="no job")
    notifications = await _mail(visit).notifications(session.token, address, job_id)
    shown = list(notifications.result.get("notifications", [])) if isinstance(notifications, Accepted) else []
    polls.record(who, key, (reply.result, shown), now)
    return polls.last(who, key)


def _polls(visit: Visit) -> PollLimit[JobState]:
    """This gateway's GetJob limit (one per app, made on first use)."""
    state = visit.request.app.state
    if not hasattr(state, "job_polls"):
        state.job_polls = PollLimit[JobState](POLL_ASKS, POLL_WINDOW_S)
    polls: PollLimit[JobState] = state.job_polls
    return polls


def _session_key(session: Session) -> str:
    """The session's token id (never the token itself kept as a key)."""
    return session.actor.token_id or hashlib.sha256(session.token.encode()).hexdigest()


@router.get("/accounts/{address}/jobs/{job_id}/cancel")
async def cancel_page(request: Request, address: str, job_id: str) -> Response:
    return await _shown_job(visit_of(request), address, job_id, "mail_job_cancel.html")


@router.post("/accounts/{address}/jobs/{job_id}/cancel")
async def cancel(request: Request, address: str, job_id: str) -> Response:
    visit = visit_of(request)
    await checked_form(visit)
    session = visit.signed_in()
    reply = await _mail(visit).cancel(session.token, address, job_id)
    if isinstance(reply, Rejected):
        return refused_page(visit, reply)
    return redirect(mail_path(address, "jobs", job_id), done="copy_cancelled")


# ------------------------------------------------------------------ purge


@router.get("/accounts/{address}/purge")
async def purge_page(request: Request, address: str, step: str = "") -> Response:
    visit = visit_of(request)
    return await _purge_page(visit, address, stage="confirm" if step == "confirm" else "notes")


@router.post("/accounts/{address}/purge")
async def purge(request: Request, address: str) -> Response:
    visit = visit_of(request)
    form = await checked_form(visit)
    session = visit.signed_in()
    typed = text(form, "confirm_address", 320).strip()
    if typed.lower() != address.lower():
        message = visit.gateway.pages.gettext(visit.language).gettext(CONFIRM_MISMATCH) % {"address": address}
        return await _purge_page(visit, address, "confirm", 422, Explained(summary=message, fields={
            "confirm_address": (message,)}), typed)
    reply = await _mail(visit).purge(session.token, address)
    if isinstance(reply, Rejected):
        if reply.code != "already_running":
            return refused_page(visit, reply)
        return await _purge_page(visit, address, "confirm", 409, visit.explain(reply), typed)
    return redirect(mail_path(address, "jobs", str(reply.result["job_id"])), done="purge_accepted")


async def _purge_page(visit: Visit, address: str, stage: str, status: int = 200, explained: Explained | None = None,
                      typed: str = "") -> Response:
    session = visit.signed_in()
    reply = await visit.gateway.panel.account(session.token, address)
    if not isinstance(reply, Accepted):
        return refused_page(visit, reply)
    return visit.render("mail_purge.html", status=status, account=account_view(reply.result, visit.language),
                        stage=stage, explained=explained, errors=explained.fields if explained else {},
                        values={"confirm_address": typed}, mail_path=mail_path, back_path=_back_path(visit, address))


# ------------------------------------------------------------------ replies as the pages show them


def _job_summary(job: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not job or not job.get("id"):
        return None
    return {"id": job["id"], "kind": JOB_KINDS.get(job.get("kind", ""), ""), "state": job.get("state", ""),
            "state_name": JOB_STATES.get(job.get("state", ""), ""), "started_at": _time(job.get("started_at"))}


def _job_view(job: Mapping[str, Any]) -> dict[str, Any]:
    totals = job.get("totals", {})
    folders = [_folder_view(folder) for folder in job.get("folders", [])]
    known = bool(folders) and all(folder["total"] is not None or not folder["pending"] for folder in folders)
    done = sum(folder["copied"] for folder in folders)
    total = sum(folder["total"] or 0 for folder in folders) if known else None
    percent = 100 if job.get("state") == "completed" else (min(100, 100 * done // total) if total else None)
    return {**(_job_summary(job) or {}), "kind_key": job.get("kind", "copy"), "folders": folders, "totals": totals,
            "running": job.get("state") == "running", "ended_at": _time(job.get("ended_at")),
            "failure": FAILURES.get(job.get("reason") or "", "") if job.get("state") == "failed" else "",
            "limit": job.get("limit"), "percent": percent, "step": None if percent is None else 5 * (percent // 5),
            "source_host": job.get("source_host", ""), "notification_address": job.get("notification_address", ""),
            "refused": [r for folder in job.get("folders", []) for r in folder.get("refused", ())]}


def _folder_view(folder: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": folder.get("name", ""), "source": folder.get("source"), "renamed": bool(folder.get("renamed")),
            "state": FOLDER_STATES.get(folder.get("state", ""), ""), "pending": folder.get("state") == "pending",
            "skipped": FOLDER_SKIPS.get(folder.get("skipped") or ""),
            "copied": int(folder.get("copied", 0)), "already_there": int(folder.get("already_there", 0)),
            "too_big": len(folder.get("too_big", ())), "total": folder.get("total")}


def _notification_view(notification: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": NOTIFICATION_KINDS.get(notification.get("kind", ""), ""), "to": notification.get("to", ""),
            "state_key": notification.get("state", ""), "state": NOTIFICATION_STATES.get(notification.get("state", ""), ""),
            "attempts": notification.get("attempts", 0), "at": _time(notification.get("ended_at") or notification.get("created_at"))}


def _retention_view(retention: Mapping[str, Any]) -> dict[str, Any]:
    last = retention.get("last")
    return {"applies": bool(retention.get("applies")), "passes": retention.get("passes", 0),
            "last": {**last, "ran_at": _time(last.get("ran_at")), "as_of": _time(last.get("as_of"))} if last else None}


def _time(moment: object) -> str | None:
    if not isinstance(moment, str):
        return None
    try:
        return datetime.fromisoformat(moment).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
