"""Accounts as documents of the kit's unit of work."""

from services.account.adapters.stored_accounts import AccountsInUnit, principal_of
from services.account.domain.account import Account
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
