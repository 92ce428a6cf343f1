"""Accounts as documents of the kit's unit of work."""

from dataclasses import replace

from services.account.adapters.stored_accounts import AccountsInUnit, principal_doc, principal_of
from services.account.domain.account import Account
from services.account.messages import RecordInDirectory
from shared.messaging.unit_of_work import UnitOfWork
from shared.plans import Plan


async def test_a_deleted_account_keeps_nothing_of_what_it_was():
    """Ensure deleting an account clears its plan, quota, comment and hash from the stored document."""
    unit = UnitOfWork("taro@example.jp", None, service="account")
    accounts = AccountsInUnit(unit)
    await accounts.save("taro@example.jp", Account(address="taro@example.jp", plan=Plan.KWC, password_hash="h",
                                                   quota_mb=2048, comment="sales"), events=[])

    await accounts.save("taro@example.jp", None, events=[])

    state = unit.state
    assert state is not None and state["deleted"] is True
    assert {state[k] for k in ("plan", "quota_mb", "comment", "password_hash", "role")} == {None}
    assert principal_of("taro@example.jp", state) is None


def _directory_entries(unit: UnitOfWork) -> list[dict]:
    return [entry for entry in unit.entries if entry["exchange"] == "account.internal"]


async def test_a_listed_change_sends_the_accounts_line_to_its_domains_turn():
    """Ensure creating an account stages its directory line in the same write, routed to the domain's shard,
    and a change the list does not show (a new password hash) stages none."""
    account = Account(address="taro@example.jp", plan=Plan.KWC, password_hash="h", quota_mb=2048, comment="sales")
    unit = UnitOfWork("taro@example.jp", None, service="account")
    await AccountsInUnit(unit).save("taro@example.jp", account, events=[])

    [entry] = _directory_entries(unit)
    assert entry["routing_key"] == "account" and entry["headers"]["x-account"] == "@example.jp"
    line = RecordInDirectory.model_validate_json(entry["body"])
    assert (line.address, line.plan, line.quota_mb, line.comment, line.state, line.version) == (
        "taro@example.jp", "kwc", 2048, "sales", "active", 1)

    stored = UnitOfWork("taro@example.jp", {"_id": "taro@example.jp", "version": 4, **principal_doc(account)}, service="account")
    await AccountsInUnit(stored).save("taro@example.jp", replace(account, password_hash="h2"), events=[])
    assert _directory_entries(stored) == []
    await AccountsInUnit(stored).save("taro@example.jp", replace(account, comment="経理"), events=[])
    assert RecordInDirectory.model_validate_json(_directory_entries(stored)[0]["body"]).version == 5
