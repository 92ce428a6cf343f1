"""The account service's private internal commands (its client contract is shared/contracts/account.py)."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from shared.contracts.account import AddressText, domain_key
from shared.contracts.base import InternalCommand


class RecordInDirectory(InternalCommand):
    """Internal, from an account's outbox (staged with the account's own change, in the same write):
    the account's line in its domain's directory, or `gone`. Decided in the domain's turn, so each
    domain's directory has one writer; a line older than the one kept (`version`) changes nothing, so
    a redelivery or a late duplicate is harmless."""

    KEY_FIELD = "domain"
    type: Literal["RecordInDirectory"] = "RecordInDirectory"
    domain: Annotated[str, Field(min_length=1, max_length=253)]
    address: AddressText
    version: Annotated[int, Field(ge=0)]
    """the version of the account's document that this line shows"""
    gone: bool = False
    plan: str | None = None
    quota_mb: int | None = None
    comment: str = ""
    created_at: datetime | None = None
    state: Literal["active", "deleting"] = "active"

    def subject_key(self) -> str:
        return domain_key(self.domain)
