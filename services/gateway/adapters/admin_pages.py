"""The server admin's pages: the account list, creation, an account's detail (quota, comment,
password) and deletion with a confirmation step. Beyond the seed (a user's manual), which names the admin
screens 【アカウント詳細設定変更】 and 【コメント・パスワード変更】."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from services.gateway.adapters import mail_pages
from services.gateway.adapters.views import account_view, sized
from services.gateway.adapters.web import PASSWORD_LIMIT, Visit, checked_form, redirect, refused_page, text, visit_of
from services.gateway.domain.messages import Explained
from shared.contracts.base import Accepted, FieldError, Rejected
from shared.plans import Plan

router = APIRouter(prefix="/admin")
PAGE_SIZE = 25
PLANS = tuple(plan.value for plan in Plan)


def account_path(address: str, *rest: str) -> str:
    return "/".join(("/admin/accounts", quote(address, safe="@"), *rest))


def _domain_of(visit: Visit, asked: str | None) -> str:
    domains = sorted(visit.admin().actor.domains)
    return asked if asked in domains else (domains[0] if domains else "")


@router.get("/accounts")
async def account_list(request: Request, domain: str | None = None, prefix: str = "", after: str | None = None,
                       done: str | None = None) -> Response:
    visit = visit_of(request)
    session = visit.admin()
    chosen = _domain_of(visit, domain)
    reply = await visit.gateway.panel.list_accounts(session.token, chosen, prefix[:255], after, PAGE_SIZE)
    page: dict[str, Any] = {"domain": chosen, "prefix": prefix, "accounts": [], "next": None, "first_page": after is None,
            "account_path": account_path}
    if isinstance(reply, Rejected):
        if reply.code != "validation_failed":
            return refused_page(visit, reply)
        explained = visit.explain(reply)
        return visit.render("accounts.html", status=422, **page, explained=explained, errors=explained.fields)
    accounts = [account_view(entry, visit.language) for entry in reply.result.get("accounts", [])]
    return visit.render("accounts.html", **{**page, "accounts": accounts, "next": reply.result.get("next")},
                        done=visit.notice(done))


@router.get("/accounts/new")
async def new_account_page(request: Request, plan: str | None = None) -> Response:
    visit = visit_of(request)
    visit.admin()
    return _new_account_form(visit, plan if plan in PLANS else None)


def _new_account_form(visit: Visit, plan: str | None, status: int = 200, values: Mapping[str, Any] | None = None,
                      explained: Explained | None = None) -> Response:
    return visit.render("account_new.html", status=status, plan=plan, plans=PLANS, sized=sized(plan or ""),
                        domains=sorted(visit.admin().actor.domains), values=values or {}, explained=explained,
                        errors=explained.fields if explained else {})


@router.post("/accounts/new")
async def create_account(request: Request) -> Response:
    visit = visit_of(request)
    form = await checked_form(visit)
    session = visit.admin()
    plan = text(form, "plan", 64)
    values = {"local_part": text(form, "local_part", 254).strip(), "domain": text(form, "domain", 254),
              "quota_mb": text(form, "quota_mb", 16).strip(), "comment": text(form, "comment", 2000)}
    if plan not in PLANS:
        return redirect("/admin/accounts/new")
    quota, quota_error = _quota(values["quota_mb"]) if sized(plan) else (None, None)
    if quota_error:
        return _new_account_form(visit, plan, 422, values, visit.explain(quota_error))
    address = f"{values['local_part']}@{values['domain']}"
    reply = await visit.gateway.panel.create_account(
        session.token, address, plan, text(form, "initial_password", PASSWORD_LIMIT), quota, values["comment"])
    if isinstance(reply, Rejected):
        if reply.code not in ("validation_failed", "already_exists"):
            return refused_page(visit, reply)
        return _new_account_form(visit, plan, 422, values, _on_form(visit, reply, "local_part"))
    return redirect(account_path(address), done="account_created")


def _quota(given: str) -> tuple[int | None, Rejected | None]:
    """The quota field as a number; the service judges its range."""
    if given.isascii() and given.isdigit() and len(given) <= 9:
        return int(given), None
    error = FieldError(field="quota_mb", code="required" if not given else "invalid", message="a whole number of MB")
    return None, Rejected(code="validation_failed", message="the quota is not a number", errors=(error,))


def _on_form(visit: Visit, reply: Rejected, address_field: str) -> Explained:
    """Field errors of `address` belong to the form's address input."""
    explained = visit.explain(reply)
    fields = {address_field if name == "address" else name: messages for name, messages in explained.fields.items()}
    if reply.code == "already_exists":
        fields.setdefault(address_field, (explained.summary,))
    return Explained(summary=explained.summary, fields=fields)


@router.get("/accounts/{address}")
async def account_page(request: Request, address: str, done: str | None = None) -> Response:
    visit = visit_of(request)
    return await _account_detail(visit, address, done=visit.notice(done))


async def _account_detail(visit: Visit, address: str, status: int = 200, **context: Any) -> Response:
    session = visit.admin()
    reply = await visit.gateway.panel.account(session.token, address)
    if not isinstance(reply, Accepted):
        return refused_page(visit, reply)
    context.setdefault("explained", None)
    context.setdefault("errors", context["explained"].fields if context["explained"] else {})
    return visit.render("account.html", status=status, account=account_view(reply.result, visit.language),
                        account_path=account_path, mail=await mail_pages.account_section(visit, session, address),
                        **context)


async def _new_quota(visit: Visit, token: str, address: str, form: FormData) -> Accepted | Rejected:
    quota, quota_error = _quota(text(form, "quota_mb", 16).strip())
    return quota_error or await visit.gateway.panel.change_quota(token, address, quota or 0)


async def _new_comment(visit: Visit, token: str, address: str, form: FormData) -> Accepted | Rejected:
    return await visit.gateway.panel.change_comment(token, address, text(form, "comment", 2000))


async def _new_password(visit: Visit, token: str, address: str, form: FormData) -> Accepted | Rejected:
    return await visit.gateway.panel.change_password(token, address, text(form, "new_password", PASSWORD_LIMIT), None)


@dataclass(frozen=True)
class Change:
    ask: Callable[[Visit, str, str, FormData], Awaitable[Accepted | Rejected]]
    done: str


CHANGES = {"quota": Change(_new_quota, "quota_changed"), "comment": Change(_new_comment, "comment_changed"),
           "password": Change(_new_password, "password_set")}
"""what an admin may change on an account's page: the command it sends, and the message once done"""


@router.post("/accounts/{address}/{change}")
async def change_account(request: Request, address: str, change: str) -> Response:
    visit = visit_of(request)
    form = await checked_form(visit)
    session = visit.admin()
    if change == "delete":
        return await _delete(visit, session.token, address)
    if change not in CHANGES:
        return refused_page(visit, Rejected(code="not_found", message="no such change"))
    values = {"quota_mb": text(form, "quota_mb", 16).strip(), "comment": text(form, "comment", 2000)}
    reply = await CHANGES[change].ask(visit, session.token, address, form)
    if isinstance(reply, Rejected):
        if reply.code != "validation_failed":
            return refused_page(visit, reply)
        return await _account_detail(visit, address, status=422, explained=visit.explain(reply), values=values,
                                     failed=change)
    return redirect(account_path(address), done=CHANGES[change].done)


@router.get("/accounts/{address}/delete")
async def delete_page(request: Request, address: str) -> Response:
    visit = visit_of(request)
    session = visit.admin()
    reply = await visit.gateway.panel.account(session.token, address)
    if not isinstance(reply, Accepted):
        return refused_page(visit, reply)
    return visit.render("account_delete.html", account=account_view(reply.result, visit.language),
                        account_path=account_path)


async def _delete(visit: Visit, token: str, address: str) -> Response:
    reply = await visit.gateway.panel.delete_account(token, address)
    if isinstance(reply, Rejected):
        return refused_page(visit, reply)
    return redirect("/admin/accounts", domain=address.rpartition("@")[2], done="account_deleted")
