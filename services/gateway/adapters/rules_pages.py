"""The mail settings pages (spam tag and sort, receive, forwarding, autoreply): routes under
/accounts/{address}/..., for the account's user and the admins of its domain.

As the seed: every switch goes 【ON/OFF】 → a confirmation page → 【OK】 → the completion message;
deletions have their confirmation page too. The rules service authorizes (a user asking for another
address gets its refusal) and judges every change; the pages only show its answers and limits.
"""

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from services.gateway.adapters.admin_pages import account_path
from services.gateway.adapters.web import Session, Visit, checked_form, redirect, refused_page, text, visit_of
from services.gateway.application.rules_panel import RulesPanel
from services.gateway.domain.autoreply_hint import REFUSED_CHARACTERS, wide_ranges
from services.gateway.domain.messages import Explained
from shared.contracts.base import Accepted, Rejected
from shared.contracts.rules import MAX_AUTOREPLY_WIDTH, MAX_DESTINATIONS, MAX_MATCH_LENGTH, MAX_RULES
from shared.plans import Capability, Plan, allows

router = APIRouter(prefix="/accounts/{address}")
STATES = {"on": True, "off": False}
SPAM_SETTINGS = {"tag": "spam_tag", "sort": "spam_sort"}
POP_NAMED = frozenset({Plan.SV_BASIC})
"""the seed: on SV-Basic the receive switch is called 「POP 受信」 (it works the same)"""
CONDITIONS = ("all", "from", "subject")
FIRST_FIELDS = 3
"""destination inputs the add form starts with ("+" adds one more)"""
LIMITS = {"max_width": MAX_AUTOREPLY_WIDTH, "half_width": MAX_AUTOREPLY_WIDTH, "full_width": MAX_AUTOREPLY_WIDTH // 2,
          "max_destinations": MAX_DESTINATIONS, "max_rules": MAX_RULES, "max_match": MAX_MATCH_LENGTH}
TEXT_LIMIT = 8000
ADDRESS_LIMIT = 400


def rules_path(address: str, *rest: str) -> str:
    return "/".join(("/accounts", quote(address, safe="@"), *rest))


def _rules_panel(visit: Visit) -> RulesPanel:
    return RulesPanel(visit.gateway.panel.bus)


def _allows(plan: str, capability: Capability) -> bool:
    try:
        return allows(Plan(plan), capability)
    except ValueError:
        return False


def rules_view(result: Mapping[str, Any]) -> dict[str, Any]:
    """GetRules' answer as the pages show it (nothing decided: the plan's capabilities say what is offered)."""
    plan = str(result.get("plan", ""))
    forwards = list(result.get("forwards", []))
    server = result.get("mail_server") or {}
    return {**result, "plan": plan, "forwards": forwards, "base": rules_path(str(result.get("address", ""))),
            "sortable": _allows(plan, Capability.SPAM_AUTOSORT),
            "pop_named": plan in POP_NAMED,
            "include_offered": _allows(plan, Capability.AUTOREPLY_INCLUDE_BODY),
            "characters_refused": not _allows(plan, Capability.AUTOREPLY_ANY_CHARACTER),
            "destinations_used": sum(len(entry.get("destinations", [])) for entry in forwards),
            "rules_used": sum(entry.get("condition") != "all" for entry in forwards),
            "applied": server.get("state") == "applied", "retrying": bool(server.get("last_failure"))}


async def top_section(visit: Visit, session: Session, address: str) -> Mapping[str, Any]:
    """What the top page's rules section (templates/_top_rules.html) shows of `address`; {} when nothing."""
    reply = await _rules_panel(visit).rules(session.token, address)
    return rules_view(reply.result) if isinstance(reply, Accepted) and reply.result else {}


async def _page(visit: Visit, address: str, template: str, status: int = 200, **context: Any) -> Response:
    session = visit.signed_in()
    reply = await _rules_panel(visit).rules(session.token, address)
    if not isinstance(reply, Accepted):
        return refused_page(visit, reply)
    context.setdefault("explained", None)
    context.setdefault("errors", context["explained"].fields if context["explained"] else {})
    context.setdefault("loss", False)
    context.setdefault("on", False)
    return visit.render(template, status=status, rules=rules_view(reply.result), rules_path=rules_path,
                        back=_back(session, address), limits=LIMITS, **context)


def _back(session: Session, address: str) -> str:
    return account_path(address) if session.actor.is_admin else "/"


def _after(visit: Visit, form: FormData, address: str, page: str, done: str) -> Response:
    """Back where the switch was clicked: the user's top page, or the setting's own page."""
    if text(form, "from", 8) == "top" and not visit.signed_in().actor.is_admin:
        return redirect("/", done=done)
    return redirect(rules_path(address, page), done=done)


def _state(state: str) -> bool:
    if state not in STATES:
        raise HTTPException(status_code=404)
    return STATES[state]


def _asks_for_loss(reply: Rejected) -> bool:
    """The rules service's answer when a change would keep new mail nowhere: confirm with accept_loss."""
    return reply.code == "validation_failed" and any(e.field == "accept_loss" for e in reply.errors)


# spam subject tag and auto-sort


@router.get("/spam")
async def spam_page(request: Request, address: str, done: str | None = None) -> Response:
    visit = visit_of(request)
    return await _page(visit, address, "rules_spam.html", done=visit.notice(done))


@router.get("/spam/{setting}/{state}")
async def spam_confirm(request: Request, address: str, setting: str, state: str, came_from: str = Query("", alias="from")) -> Response:
    if setting not in SPAM_SETTINGS:
        raise HTTPException(status_code=404)
    return await _page(visit_of(request), address, "rules_confirm.html", kind=SPAM_SETTINGS[setting], on=_state(state),
                       action=rules_path(address, "spam", setting, state), came_from=came_from[:8],
                       cancel=rules_path(address, "spam"))


@router.post("/spam/{setting}/{state}")
async def spam_switch(request: Request, address: str, setting: str, state: str) -> Response:
    visit = visit_of(request)
    form = await checked_form(visit)
    if setting not in SPAM_SETTINGS:
        raise HTTPException(status_code=404)
    name = SPAM_SETTINGS[setting]
    reply = await _rules_panel(visit).switch(visit.signed_in().token, address, name, _state(state))
    if isinstance(reply, Rejected):
        return refused_page(visit, reply)
    return _after(visit, form, address, "spam", f"{name}_{state}")


# receive on/off


@router.get("/receive")
async def receive_page(request: Request, address: str, done: str | None = None) -> Response:
    visit = visit_of(request)
    return await _page(visit, address, "rules_receive.html", done=visit.notice(done))


@router.get("/receive/{state}")
async def receive_confirm(request: Request, address: str, state: str, came_from: str = Query("", alias="from")) -> Response:
    return await _page(visit_of(request), address, "rules_confirm.html", kind="receive", on=_state(state),
                       action=rules_path(address, "receive", state), came_from=came_from[:8],
                       cancel=rules_path(address, "receive"))


@router.post("/receive/{state}")
async def receive_switch(request: Request, address: str, state: str) -> Response:
    visit = visit_of(request)
    form = await checked_form(visit)
    on = _state(state)
    reply = await _rules_panel(visit).switch(visit.signed_in().token, address, "receive", on,
                                             accept_loss=text(form, "accept_loss", 8) == "yes")
    if isinstance(reply, Rejected):
        if not _asks_for_loss(reply):
            return refused_page(visit, reply)
        return await _page(visit, address, "rules_confirm.html", status=409, kind="receive", on=on, loss=True,
                           action=rules_path(address, "receive", state), came_from=text(form, "from", 8),
                           cancel=rules_path(address, "receive"))
    rules = await top_section(visit, visit.signed_in(), address)
    prefix = "pop_" if rules.get("pop_named") else ""
    return _after(visit, form, address, "receive", f"{prefix}receive_{state}")


# forwarding


@router.get("/forwarding")
async def forwarding_page(request: Request, address: str, done: str | None = None) -> Response:
    visit = visit_of(request)
    return await _page(visit, address, "rules_forwarding.html", done=visit.notice(done))


@router.get("/forwarding/new")
async def new_forward_page(request: Request, address: str) -> Response:
    return await _forward_form(visit_of(request), address, {"condition": "all", "match": "",
                                                            "destinations": [""] * FIRST_FIELDS})


async def _forward_form(visit: Visit, address: str, values: Mapping[str, Any], status: int = 200,
                        explained: Explained | None = None) -> Response:
    return await _page(visit, address, "rules_forward_new.html", status=status, values=values, explained=explained,
                       conditions=CONDITIONS)


def _forward_values(form: FormData) -> dict[str, Any]:
    condition = text(form, "condition", 16)
    destinations = [value[:ADDRESS_LIMIT].strip() for value in form.getlist("destination") if isinstance(value, str)]
    return {"condition": condition if condition in CONDITIONS else "all",
            "match": text(form, "match", TEXT_LIMIT) if condition != "all" else "",
            "destinations": destinations[:MAX_DESTINATIONS] or [""]}


@router.post("/forwarding/new")
async def add_forward(request: Request, address: str) -> Response:
    visit = visit_of(request)
    form = await checked_form(visit)
    values = _forward_values(form)
    if text(form, "action", 8) == "more":
        wanted = values["destinations"] + [""]
        return await _forward_form(visit, address, {**values, "destinations": wanted[:MAX_DESTINATIONS]})
    given = [d for d in values["destinations"] if d]
    reply = await _rules_panel(visit).add_forwarding(visit.signed_in().token, address, values["condition"],
                                                     values["match"], given)
    if isinstance(reply, Rejected):
        if reply.code not in ("validation_failed", "invalid_message"):
            return refused_page(visit, reply)
        return await _forward_form(visit, address, values, 422, _on_forward_form(visit, reply))
    return redirect(rules_path(address, "forwarding"), done="forward_added")


def _on_forward_form(visit: Visit, reply: Rejected) -> Explained:
    """Errors of `destinations.3` and the like belong to the destinations group."""
    explained = visit.explain(reply)
    fields: dict[str, tuple[str, ...]] = {}
    for name, messages in explained.fields.items():
        key = "destinations" if name.startswith("destinations") else name
        fields[key] = (*fields.get(key, ()), *messages)
    return Explained(summary=explained.summary, fields=fields)


@router.get("/forwarding/{entry_id}/delete")
async def forward_delete_confirm(request: Request, address: str, entry_id: str) -> Response:
    return await _forward_delete_page(visit_of(request), address, entry_id)


async def _forward_delete_page(visit: Visit, address: str, entry_id: str, **context: Any) -> Response:
    return await _page(visit, address, "rules_confirm.html", kind="forward_delete", entry_id=entry_id,
                       action=rules_path(address, "forwarding", quote(entry_id, safe=""), "delete"),
                       cancel=rules_path(address, "forwarding"), came_from="", **context)


@router.post("/forwarding/{entry_id}/delete")
async def remove_forward(request: Request, address: str, entry_id: str) -> Response:
    visit = visit_of(request)
    form = await checked_form(visit)
    reply = await _rules_panel(visit).remove_forwarding(visit.signed_in().token, address, entry_id,
                                                        accept_loss=text(form, "accept_loss", 8) == "yes")
    if isinstance(reply, Rejected):
        if _asks_for_loss(reply):
            return await _forward_delete_page(visit, address, entry_id, status=409, loss=True)
        if reply.code == "validation_failed":  # gone already (another tab)
            return await _page(visit, address, "rules_forwarding.html", status=422, explained=visit.explain(reply))
        return refused_page(visit, reply)
    return redirect(rules_path(address, "forwarding"), done="forward_removed")


# autoreply


@router.get("/autoreply")
async def autoreply_page(request: Request, address: str, done: str | None = None) -> Response:
    visit = visit_of(request)
    return await _autoreply_form(visit, address, done=visit.notice(done))


async def _autoreply_form(visit: Visit, address: str, status: int = 200, **context: Any) -> Response:
    return await _page(visit, address, "rules_autoreply.html", status=status, wide_ranges=wide_ranges(),
                       refused_characters=REFUSED_CHARACTERS, **context)


@router.post("/autoreply")
async def set_autoreply(request: Request, address: str) -> Response:
    visit = visit_of(request)
    form = await checked_form(visit)
    session = visit.signed_in()
    reply_text, include_original = text(form, "text", TEXT_LIMIT), text(form, "include_original", 8) == "yes"
    values = {"text": reply_text, "include_original": include_original}
    before = await top_section(visit, session, address)
    reply = await _rules_panel(visit).set_autoreply(session.token, address, reply_text, include_original)
    if isinstance(reply, Rejected):
        if reply.code not in ("validation_failed", "invalid_message", "not_allowed_on_plan"):
            return refused_page(visit, reply)
        return await _autoreply_form(visit, address, 422, values=values, explained=visit.explain(reply))
    return redirect(rules_path(address, "autoreply"), done="autoreply_changed" if before.get("autoreply") else "autoreply_set")


@router.get("/autoreply/delete")
async def autoreply_delete_confirm(request: Request, address: str) -> Response:
    return await _page(visit_of(request), address, "rules_confirm.html", kind="autoreply_delete", came_from="",
                       action=rules_path(address, "autoreply", "delete"), cancel=rules_path(address, "autoreply"))


@router.post("/autoreply/delete")
async def delete_autoreply(request: Request, address: str) -> Response:
    visit = visit_of(request)
    await checked_form(visit)
    reply = await _rules_panel(visit).delete_autoreply(visit.signed_in().token, address)
    if isinstance(reply, Rejected):
        return refused_page(visit, reply)
    return redirect(rules_path(address, "autoreply"), done="autoreply_deleted")
