"""Replies turned into what a page shows (numbers formatted; nothing decided)."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.gateway.domain.messages import PLAN_NAMES
from shared.plans import Capability, Plan, allows

MIB = 1024 * 1024


def account_view(result: Mapping[str, Any], language: str) -> dict[str, Any]:
    plan = str(result.get("plan", ""))
    usage = result.get("usage") or None
    quota_mb = result.get("quota_mb")
    used = int(usage["bytes"]) if usage else None
    return {
        "address": result.get("address", ""),
        "plan": plan,
        "plan_name": PLAN_NAMES.get(plan, plan),
        "quota_mb": quota_mb,
        "sized": sized(plan),
        "retained": _allows(plan, Capability.RETENTION),
        "comment": result.get("comment", ""),
        "used_mb": None if used is None else f"{used / MIB:,.1f}",
        "messages": None if usage is None else int(usage["messages"]),
        "used_percent": _percent(used, quota_mb),
        "created_at": _day(result.get("created_at")),
        "state": result.get("state", "active"),
    }


def sized(plan: str) -> bool:
    """Whether the plan has a quota an admin sets (not sv-basic)."""
    return _allows(plan, Capability.CHANGE_QUOTA)


def _allows(plan: str, capability: Capability) -> bool:
    try:
        return allows(Plan(plan), capability)
    except ValueError:
        return False


def _percent(used: int | None, quota_mb: int | None) -> int | None:
    if used is None or not quota_mb:
        return None
    return min(100, round(100 * used / (quota_mb * MIB)))


def _day(moment: object) -> str | None:
    if not isinstance(moment, str):
        return None
    try:
        return datetime.fromisoformat(moment).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return None
