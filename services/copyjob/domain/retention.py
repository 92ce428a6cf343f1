"""Retention (business-standard and kwc): INBOX messages saved there more than 180 days ago move to
Archive, messages in Trash for more than 31 days are expunged. The clock is the time in the folder
(IMAP SAVEDATE, RFC 8514), not INTERNALDATE: copied mail keeps its old date and is not archived at
once. Passes come once per period per account, each account at its own offset into the period so
that a pass over many accounts is spread out. Pure."""

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from shared.plans import Capability, Plan, allows

INBOX_DAYS = 180
TRASH_DAYS = 31


@dataclass(frozen=True)
class RetentionPass:
    period: int
    as_of: datetime
    ran_at: datetime
    archived: int
    expunged: int


@dataclass(frozen=True)
class RetentionState:
    queued_period: int | None = None
    """the period whose pass was queued last (once queued, not again in that period)"""
    last: RetentionPass | None = None
    passes: int = 0


@dataclass(frozen=True)
class Cutoffs:
    """SEARCH SAVEDBEFORE dates: a message saved on a day before this has been there long enough
    (day by day, as IMAP dates go: saved 181 days before `as_of` qualifies, 180 does not)."""

    inbox: date
    trash: date


def cutoffs(as_of: datetime) -> Cutoffs:
    today = as_of.astimezone(UTC).date()
    return Cutoffs(inbox=today - timedelta(days=INBOX_DAYS), trash=today - timedelta(days=TRASH_DAYS))


PLANS = frozenset(plan.value for plan in Plan if allows(plan, Capability.RETENTION))


def applies(plan: str | None) -> bool:
    return plan in PLANS


def period_of(now: datetime, period_s: int) -> int:
    return int(now.timestamp()) // period_s


def due(address: str, now: datetime, period_s: int, spread_s: int, queued_period: int | None) -> bool:
    """The account's pass of this period is not queued yet and its offset into the period has passed."""
    period = period_of(now, period_s)
    return queued_period != period and int(now.timestamp()) - period * period_s >= offset(address, min(spread_s, period_s))


def offset(address: str, spread_s: int) -> int:
    """Where in each period the account's pass comes: fixed per address, spread evenly."""
    return int.from_bytes(hashlib.sha256(address.encode()).digest()[:8], "big") % spread_s if spread_s else 0


def imap_date(day: date) -> str:
    """RFC 3501 date-text (`7-Mar-2026`), in English whatever the locale."""
    return f"{day.day}-{MONTHS[day.month - 1]}-{day.year}"


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
