"""Sign-in, sign-out and the language switch."""

import math
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.gateway.adapters.web import (
    LANGUAGE_COOKIE,
    PASSWORD_LIMIT,
    PRE_SESSION_COOKIE,
    Visit,
    checked_form,
    end_session_cookie,
    local_path,
    redirect,
    refused_page,
    set_session_cookie,
    text,
    visit_of,
)
from services.gateway.domain.forms import new_pre_session
from services.gateway.domain.languages import LANGUAGES
from shared.contracts.base import Accepted, Rejected

router = APIRouter()
LOGIN_LIMIT = 254


def home_of(role: str) -> str:
    return "/admin/accounts" if role == "admin" else "/"


@router.get("/login")
async def sign_in_page(request: Request, notice: str | None = None) -> Response:
    visit = visit_of(request)
    if visit.session is not None:
        return redirect(home_of(visit.session.actor.role))
    return _sign_in_form(visit, notice=visit.notice(notice))


def _sign_in_form(visit: Visit, status: int = 200, **context: object) -> Response:
    pre_session = visit.request.cookies.get(PRE_SESSION_COOKIE) or new_pre_session()
    nonce = visit.gateway.forms.sign_in_nonce(pre_session, visit.gateway.clock())
    response = visit.render("login.html", status=status, nonce=nonce, **context)
    response.set_cookie(PRE_SESSION_COOKIE, pre_session, path="/", secure=True, httponly=True, samesite="strict")
    return response


@router.post("/login")
async def sign_in(request: Request) -> Response:
    visit = visit_of(request)
    form = await request.form()
    login = text(form, "login", LOGIN_LIMIT).strip()
    gateway = visit.gateway
    now = gateway.clock()
    if not gateway.forms.sign_in_nonce_valid(request.cookies.get(PRE_SESSION_COOKIE), text(form, "nonce"), now):
        return _sign_in_form(visit, status=400, notice=visit.notice("form_expired"), values={"login": login})
    keys = (f"client:{request.client.host if request.client else '?'}", f"login:{login.lower()}")
    if (wait := gateway.attempts.retry_after(keys, now)) > 0:
        response = _sign_in_form(visit, status=429, notice=visit.notice("too_many_attempts"), values={"login": login})
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    reply = await gateway.panel.sign_in(login, text(form, "password", PASSWORD_LIMIT))
    if not isinstance(reply, Accepted):
        if reply.code in ("invalid_credentials", "locked"):
            gateway.attempts.record(keys, now)  # only failures count: an office behind one address signs in freely
        explained = visit.explain(reply)
        return _sign_in_form(visit, status=401 if reply.code != "unavailable" else 503, explained=explained,
                             values={"login": login})
    response = redirect(home_of(str(reply.result["role"])))
    set_session_cookie(response, str(reply.result["token"]), datetime.fromisoformat(reply.result["expires_at"]), now)
    response.delete_cookie(PRE_SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


@router.post("/logout")
async def sign_out(request: Request) -> Response:
    visit = visit_of(request)
    await checked_form(visit)
    reply = await visit.gateway.panel.end_session(visit.signed_in().token)
    told = isinstance(reply, Accepted) or reply.code == "unauthenticated"  # ended already: nothing left to end
    response = redirect("/login", notice="signed_out" if told else "logout_not_told")
    end_session_cookie(response)
    return response


@router.post("/logout/everywhere")
async def sign_out_everywhere(request: Request) -> Response:
    """Every session of this login ends, on every device (a lost phone), without changing the password."""
    visit = visit_of(request)
    await checked_form(visit)
    session = visit.signed_in()
    reply = await visit.gateway.panel.sign_out_everywhere(session.token, session.actor.subject)
    if isinstance(reply, Rejected) and reply.code != "unauthenticated":
        return refused_page(visit, reply)
    response = redirect("/login", notice="signed_out_everywhere")
    end_session_cookie(response)
    return response


@router.get("/lang/{language}")
async def switch_language(language: str, next: str | None = None) -> Response:
    response: Response = RedirectResponse(local_path(next), status_code=303)
    if language in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, path="/", secure=True, samesite="lax")
    return response
