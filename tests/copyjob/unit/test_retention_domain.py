"""Retention's pure parts: the cut-offs day by day at both boundaries, when an account's pass is
due (once per period, spread over it), and the IMAP date."""

from collections import Counter
from datetime import UTC, date, datetime, timedelta

from services.copyjob.domain.retention import PLANS, applies, cutoffs, due, imap_date, offset, period_of

SAVED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
DAY = 86400


def _moves_inbox(days_later: int) -> bool:
    """What SEARCH SAVEDBEFORE does with a message saved at SAVED: saved on a day before the cut-off."""
    return SAVED.date() < cutoffs(SAVED + timedelta(days=days_later)).inbox


def _expunges_trash(days_later: int) -> bool:
    return SAVED.date() < cutoffs(SAVED + timedelta(days=days_later)).trash


def test_inbox_mail_moves_after_180_days_in_the_folder_not_before():
    assert [_moves_inbox(d) for d in (179, 180, 181)] == [False, False, True]


def test_trash_mail_goes_after_31_days_not_before():
    assert [_expunges_trash(d) for d in (30, 31, 32)] == [False, False, True]


def test_only_business_standard_and_kwc_have_retention():
    assert {"business-standard", "kwc"} == PLANS and not applies("sv-basic") and not applies(None)


def test_a_pass_is_due_once_per_period_after_the_accounts_offset():
    start = datetime.fromtimestamp(period_of(SAVED, DAY) * DAY, UTC)
    address = "a@example.jp"
    at = start + timedelta(seconds=offset(address, DAY))

    assert not due(address, at - timedelta(seconds=1), DAY, DAY, None)
    assert due(address, at, DAY, DAY, None)
    assert not due(address, at, DAY, DAY, period_of(at, DAY))  # queued already this period
    assert due(address, at + timedelta(days=1), DAY, DAY, period_of(at, DAY))
    assert due(address, start, DAY, 0, None)  # no spread: at the period's start


def test_offsets_spread_accounts_over_the_period():
    hours = Counter(offset(f"user{n}@example.jp", DAY) // 3600 for n in range(2400))
    assert len(hours) == 24 and max(hours.values()) < 2 * min(hours.values())


def test_imap_dates_are_english_whatever_the_locale():
    assert imap_date(date(2026, 3, 7)) == "7-Mar-2026"
