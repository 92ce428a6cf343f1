"""The web panel's HTTP side: sessions in a cookie, forms checked, every page asked of the services.

Routes stay thin: read the form, ask the panel (one command), then redirect on success (post, redirect,
get) or render the page again with every refusal next to its field.
"""

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.adapters.pages import HERE, Pages
from services.gateway.application.panel import Panel
from services.gateway.domain import mail_messages, rules_messages
from services.gateway.domain.forms import FormKeys
from services.gateway.domain.languages import LANGUAGES, Language, chosen
from services.gateway.domain.messages import DONE, PLAN_NAMES, Explained, explain, notice_text
from services.gateway.domain.throttle import AttemptLimit
from shared.auth import Actor, InvalidToken, TokenVerifier
from shared.contracts.base import Accepted, Rejected

log = logging.getLogger(__name__)
COMPLETIONS: Mapping[str, str] = {**DONE, **rules_messages.DONE, **mail_messages.DONE}
"""every page's completion messages, by the key its redirect names"""
SESSION_COOKIE = "__Host-session"
PRE_SESSION_COOKIE = "__Host-presession"
LANGUAGE_COOKIE = "lang"
PASSWORD_LIMIT = 1 + 1024
"""one more than any contract's password takes, so a longer one is refused as too long, never cut short"""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin", "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@dataclass(frozen=True)
class Session:
    token: str
    actor: Actor


@dataclass
class Gateway:
    """Everything a route needs, made once by the composition root."""

    panel: Panel
    pages: Pages
    forms: FormKeys
    verifier: TokenVerifier
    attempts: AttemptLimit
    hsts: bool = False
    clock: Callable[[], float] = field(default=time.time)
    healthy: Callable[[], bool] = field(default=lambda: True)


class GoToSignIn(Exception):
    """No live session: back to the sign-in page, saying why."""

    def __init__(self, notice: str) -> None:
        self.notice = notice


class FormRefused(Exception):
    """A post without its form token, or from another site: nothing is done."""


class NotAdmin(Exception):
    """A user asked for an admin's page."""


@dataclass(frozen=True)
class Visit:
    """One request as the pages see it: who asks, in which language."""

    gateway: Gateway
    request: Request
    language: Language
    session: Session | None
    session_expired: bool = False

    @property
    def other_language(self) -> Language:
        return next(language for language in LANGUAGES if language != self.language)

    def signed_in(self) -> Session:
        if self.session is None:
            raise GoToSignIn("expired" if self.session_expired else "sign_in_first")
        return self.session

    def admin(self) -> Session:
        session = self.signed_in()
        if not session.actor.is_admin:
            raise NotAdmin(session.actor.subject)
        return session

    def form_token(self) -> str:
        return self.gateway.forms.form_token(self.session.token) if self.session else ""

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        url = self.request.url
        base = {"lang": self.language, "other_lang": self.other_language, "path": url.path,
                "here": url.path + (f"?{url.query}" if url.query else ""),
                "session": self.session, "form_token": self.form_token(), "notice": None, "summary": None,
                "errors": {}, "values": {}, "done": None, "explained": None, "failed": None,
                "plan_names": PLAN_NAMES}
        body = self.gateway.pages.render(self.language, name, {**base, **context})
        return HTMLResponse(body, status_code=status)

    def explain(self, reply: Rejected) -> Explained:
        return explain(reply, self.gateway.pages.gettext(self.language))

    def notice(self, key: str | None) -> str | None:
        return notice_text(key, self.gateway.pages.gettext(self.language), COMPLETIONS)


def visit_of(request: Request) -> Visit:
    """The request's visit, read once (the token verified once) however many times a route asks."""
    if (known := getattr(request.state, "visit", None)) is not None:
        return known  # type: ignore[no-any-return]
    request.state.visit = visit = _visit(request)
    return visit


def _visit(request: Request) -> Visit:
    gateway: Gateway = request.app.state.gateway
    language = chosen(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return Visit(gateway, request, language, None)
    try:
        return Visit(gateway, request, language, Session(token, gateway.verifier.verify(token)))
    except InvalidToken:
        return Visit(gateway, request, language, None, session_expired=True)


def redirect(path: str, **query: str) -> RedirectResponse:
    target = f"{path}?{urlencode(query)}" if query else path
    return RedirectResponse(target, status_code=303)


def local_path(candidate: str | None) -> str:
    """Where a redirect may go: a path of this site only (never `//host` or a scheme)."""
    if candidate and candidate.startswith("/") and not candidate.startswith("//") and "\\" not in candidate:
        return candidate
    return "/"


async def checked_form(visit: Visit) -> FormData:
    """The posted form, if it carries the session's form token."""
    form = await visit.request.form()
    session = visit.signed_in()
    given = form.get("form_token")
    if not visit.gateway.forms.form_token_valid(session.token, given if isinstance(given, str) else None):
        raise FormRefused("the form token is missing or not this session's")
    return form


def text(form: FormData, name: str, limit: int = 4096) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def set_session_cookie(response: Response, token: str, expires_at: datetime, now: float) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max(0, int(expires_at.timestamp() - now)), path="/",
                        secure=True, httponly=True, samesite="strict")


def end_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def refused_page(visit: Visit, reply: Rejected) -> Response:
    """A refusal that is not about a form's fields: the session ended, or the page may not be seen."""
    if reply.code == "unauthenticated":
        raise GoToSignIn("ended")
    status = {"forbidden": 403, "not_found": 404, "unavailable": 503}.get(reply.code, 400)
    return visit.render("refused.html", status=status, explained=visit.explain(reply))


def accepted(reply: Accepted | Rejected) -> Mapping[str, Any] | None:
    return reply.result if isinstance(reply, Accepted) else None


def build_app(gateway: Gateway) -> FastAPI:
    from services.gateway.adapters import admin_pages, mail_pages, rules_pages, session_pages, user_pages

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gateway
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (session_pages, user_pages, admin_pages, rules_pages, mail_pages):
        app.include_router(module.router)
    _handle_refusals(app)
    _guard_requests(app, gateway)
    return app


def _handle_refusals(app: FastAPI) -> None:
    @app.exception_handler(GoToSignIn)
    async def _to_sign_in(request: Request, error: GoToSignIn) -> Response:
        response = redirect("/login", notice=error.notice)
        end_session_cookie(response)
        return response

    @app.exception_handler(FormRefused)
    async def _form_refused(request: Request, error: FormRefused) -> Response:
        return visit_of(request).render("refused.html", status=403, explained=_plain(visit_of(request), "form_refused"))

    @app.exception_handler(NotAdmin)
    async def _not_admin(request: Request, error: NotAdmin) -> Response:
        return visit_of(request).render("refused.html", status=403, explained=_plain(visit_of(request), "admins_only"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        """No such page, or a method a page does not take (GET /logout): a page, never framework JSON."""
        notice = "no_such_page" if error.status_code in (404, 405) else "request_refused"
        return visit_of(request).render("refused.html", status=error.status_code, explained=_plain(visit_of(request), notice))


def _plain(visit: Visit, notice: str) -> Explained:
    return Explained(summary=visit.notice(notice) or notice, fields={})


def _guard_requests(app: FastAPI, gateway: Gateway) -> None:
    app.add_middleware(LimitedBodies)

    @app.middleware("http")
    async def _guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if request.method not in SAFE_METHODS and _cross_site(request):
            response: Response = visit_of(request).render(
                "refused.html", status=403, explained=_plain(visit_of(request), "form_refused"))
        else:
            response = await _answered(request, call_next)
        response.headers.update(SECURITY_HEADERS)
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        if gateway.hsts:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @app.get("/healthz", include_in_schema=False)
    async def _health() -> JSONResponse:
        ok = gateway.healthy()
        return JSONResponse({"status": "ok" if ok else "broker unreachable"}, status_code=200 if ok else 503)


async def _answered(request: Request, call_next: Callable[[Request], Any]) -> Response:
    """The route's response; a bug is a page of ours (with the headers below), never a bare 500."""
    try:
        response: Response = await call_next(request)
        return response
    except Exception:
        log.exception("a page failed: %s %s", request.method, request.url.path)
        return visit_of(request).render("refused.html", status=500, explained=_plain(visit_of(request), "page_failed"))


MAX_BODY_BYTES = 64 * 1024
"""a form of this panel is a few KiB; anything larger is refused before it is read"""
FORM_TYPE = b"application/x-www-form-urlencoded"


class BodyTooLarge(Exception):
    pass


class LimitedBodies:
    """Posts are url-encoded forms of at most MAX_BODY_BYTES, checked before any parsing (no multipart:
    no file ever reaches the disk)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if headers.get(b"content-type", b"").split(b";")[0].strip().lower() != FORM_TYPE:
            await _plain_status(send, 415)
            return
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            await _plain_status(send, 413)
            return
        try:
            await self.app(scope, _limited(receive), send)
        except BodyTooLarge:
            await _plain_status(send, 413)


def _limited(receive: Receive) -> Receive:
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > MAX_BODY_BYTES:
            raise BodyTooLarge
        return message
    return limited


async def _plain_status(send: Send, status: int) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def _cross_site(request: Request) -> bool:
    """A post a browser says came from another site, or whose Origin is not this host."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    host = request.headers.get("host", "")
    return origin == "null" or origin.partition("://")[2] != host


def now_utc(gateway: Gateway) -> datetime:
    return datetime.fromtimestamp(gateway.clock(), UTC)
