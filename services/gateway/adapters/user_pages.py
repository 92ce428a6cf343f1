"""The user's own pages: the top page (the account at a glance) and the password change."""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.gateway.adapters import mail_pages, rules_pages
from services.gateway.adapters.session_pages import home_of
from services.gateway.adapters.views import account_view
from services.gateway.adapters.web import (
    PASSWORD_LIMIT,
    Visit,
    checked_form,
    end_session_cookie,
    redirect,
    refused_page,
    text,
    visit_of,
)
from services.gateway.domain.messages import Explained
from shared.contracts.base import Accepted, FieldError, Rejected

router = APIRouter()


@router.get("/")
async def top(request: Request, done: str | None = None) -> Response:
    visit = visit_of(request)
    session = visit.signed_in()
    if session.actor.is_admin:
        return redirect(home_of("admin"))
    address = session.actor.subject
    reply, rules, mail = await asyncio.gather(  # three services, asked at once
        visit.gateway.panel.account(session.token, address), rules_pages.top_section(visit, session, address),
        mail_pages.top_section(visit, session, address))
    if not isinstance(reply, Accepted):
        return refused_page(visit, reply)
    return visit.render("top.html", account=account_view(reply.result, visit.language), done=visit.notice(done),
                        rules=rules, mail=mail)


@router.get("/password")
async def password_page(request: Request) -> Response:
    visit = visit_of(request)
    if visit.signed_in().actor.is_admin:
        return redirect(home_of("admin"))
    return await _password_form(visit)


async def _password_form(visit: Visit, status: int = 200, explained: Explained | None = None) -> Response:
    session = visit.signed_in()
    reply = await visit.gateway.panel.account(session.token, session.actor.subject)
    if not isinstance(reply, Accepted):
        return refused_page(visit, reply)
    return visit.render("password.html", status=status, account=account_view(reply.result, visit.language),
                        explained=explained, errors=explained.fields if explained else {})


@router.post("/password")
async def change_password(request: Request) -> Response:
    visit = visit_of(request)
    form = await checked_form(visit)
    session = visit.signed_in()
    new_password = text(form, "new_password", PASSWORD_LIMIT)
    if new_password != text(form, "new_password_confirm", PASSWORD_LIMIT):
        mismatch = Rejected(code="validation_failed", message="the new passwords differ",
                            errors=(FieldError(field="new_password_confirm", code="mismatch", message="differ"),))
        return await _password_form(visit, status=422, explained=visit.explain(mismatch))
    reply = await visit.gateway.panel.change_password(
        session.token, session.actor.subject, new_password, text(form, "current_password", PASSWORD_LIMIT))
    if isinstance(reply, Rejected):
        if reply.code not in ("validation_failed", "invalid_credentials", "locked"):
            return refused_page(visit, reply)
        return await _password_form(visit, status=422, explained=_about_current_password(visit, reply))
    response = redirect("/login", notice="password_changed")
    end_session_cookie(response)  # the change ended every session of the account, this one too
    return response


def _about_current_password(visit: Visit, reply: Rejected) -> Explained:
    """A wrong current password is the current password field's error, not only the page's."""
    explained = visit.explain(reply)
    if reply.code == "validation_failed":
        return explained
    return Explained(summary=explained.summary, fields={"current_password": (explained.summary,)})
