"""Which events become which notifications, to whom."""

from services.notifier.entrypoint import on_job_completed, on_job_failed, on_password_changed
from shared.contracts.account import PasswordChanged
from shared.contracts.copyjob import JobCompleted, JobFailed


def test_a_copys_end_goes_to_its_notification_address_a_purges_to_the_account():
    copy = JobCompleted(job_id="j1", address="taro@example.jp", notification_address="me@example.net")
    [notify] = on_job_completed(copy)
    assert (notify.kind, notify.to, notify.event_id, notify.job_id) == ("copy_completed", "me@example.net",
                                                                       str(copy.message_id), "j1")
    purge = JobFailed(job_id="j2", kind="purge", address="taro@example.jp", notification_address="taro@example.jp",
                      reason="internal")
    [failed] = on_job_failed(purge)
    assert (failed.kind, failed.to, failed.reason) == ("purge_failed", "taro@example.jp", "internal")


def test_the_security_notice_is_a_setting():
    from datetime import UTC, datetime

    changed = PasswordChanged(address="taro@example.jp", actor="taro@example.jp", sessions_valid_from=datetime.now(UTC))
    assert [n.to for n in on_password_changed(changed, enabled=True)] == ["taro@example.jp"]
    assert on_password_changed(changed, enabled=False) == []
