"""The mail settings pages (spam tag and sort, receive, forwarding, autoreply): routes under
/accounts/{address}/..., for the account's user and the admins of its domain."""

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter

from services.gateway.adapters.web import Session, Visit

router = APIRouter()


async def top_section(visit: Visit, session: Session, address: str) -> Mapping[str, Any]:
    """What the top page's rules section (templates/_top_rules.html) shows of `address`; {} when nothing."""
    return {}
