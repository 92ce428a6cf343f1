"""The mail data pages (copy from another server, its job page, purge): routes under
/accounts/{address}/..., for the account's user and the admins of its domain."""

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter

from services.gateway.adapters.web import Session, Visit

router = APIRouter()


async def top_section(visit: Visit, session: Session, address: str) -> Mapping[str, Any]:
    """What the top page's mail section (templates/_top_mail.html) shows of `address`; {} when nothing."""
    return {}
