"""The notifier's pure parts and its mail: masking, the seed's subjects and bodies as a mail client
decodes them, headers no value can inject into, and how a notification moves on SMTP outcomes."""

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest

from services.notifier.adapters.mail import UnsafeHeader, message_of
from services.notifier.domain.masking import masked
from services.notifier.domain.notifications import Notification, deferred, refused, sent
from services.notifier.settings import NotifierSettings

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SETTINGS = NotifierSettings(amqp_url="amqp://x", mongodb_url="mongodb://x", mongodb_db="n",  # type: ignore[arg-type]
                            session_public_key="k" * 40, faq_url="https://faq.example.jp/3661/")


@pytest.mark.parametrize(("address", "shown"), [("t@example.jp", "*@example.jp"), ("ta@example.jp", "t*@example.jp"),
                                                ("tao@example.jp", "t*o@example.jp"),
                                                ("taro.yamada@example.jp", "t*********a@example.jp")])
def test_the_local_part_is_masked_but_its_ends(address, shown):
    assert masked(address) == shown


def _notification(kind: str, **fields) -> Notification:
    return Notification(id="0b4c6f2e-1d9a-4c53-9e1f-5a7b2c3d4e5f", kind=kind, to="notify@example.net", created_at=NOW,
                        **fields)


def _decoded(kind: str, language: str = "ja", **fields):
    settings = SETTINGS.model_copy(update={"language": language})
    raw = message_of(_notification(kind, **fields), "taro@example.jp", settings, NOW).as_bytes()
    return message_from_bytes(raw, policy=default)


def test_the_copy_mails_are_the_seeds():
    done = _decoded("copy_completed")
    assert done["Subject"] == "【重要】CPIより メールデータコピーが完了いたしました。"
    assert done.get_content() == ("t**o@example.jp へメールデータコピーが完了いたしましたので、ご連絡いたします。\n"
                                  "ウェブメールにログインすることで、コピーできているかの確認ができます。\n")
    failed = _decoded("copy_failed", reason="source_login_refused")
    assert failed["Subject"] == "【重要】CPIより メールデータコピーの再操作をお願いします。"
    body = failed.get_content()
    assert body.startswith("メールデータコピーが正常に完了できませんでした。\n原因: コピー元のサーバーがログインを拒否しました")
    assert "FAQ https://faq.example.jp/3661/\nよろしくお願いいたします。" in body


def test_headers_subject_encoding_and_message_id():
    mail = _decoded("purge_completed", language="en")
    assert mail["Subject"] == "[Important] CPI: your mail data has been deleted"
    assert (mail["From"], mail["To"], mail["Auto-Submitted"]) == ("noreply@example.jp", "notify@example.net", "auto-generated")
    assert mail["Message-ID"] == "<0b4c6f2e-1d9a-4c53-9e1f-5a7b2c3d4e5f@mailss.invalid>" and mail["Date"]
    raw = message_of(_notification("copy_completed"), "taro@example.jp", SETTINGS, NOW).as_bytes()
    assert b"=?utf-8?" in raw.split(b"\n\n")[0].lower() and raw.isascii()


@pytest.mark.parametrize("field", ["to", "id"])
def test_a_line_break_in_a_value_is_refused(field):
    notification = _notification("copy_completed")
    broken = Notification(**{**notification.__dict__, field: "a@example.net\r\nBcc: victim@example.org"})
    with pytest.raises(UnsafeHeader):
        message_of(broken, "taro@example.jp", SETTINGS, NOW)


def test_temporary_refusals_wait_longer_each_time_then_fail_after_a_day():
    first = deferred(_notification("copy_completed"), "451 temporary", NOW, timedelta(days=1))
    second = deferred(first, "451 temporary", NOW + timedelta(minutes=1), timedelta(days=1))
    assert (first.state, first.attempts, first.next_attempt_at) == ("pending", 1, NOW + timedelta(seconds=30))
    assert second.next_attempt_at == NOW + timedelta(minutes=1, seconds=60)
    late = deferred(second, "no connection (OSError)", NOW + timedelta(days=1), timedelta(days=1))
    assert (late.state, late.attempts, late.last_error) == ("failed", 3, "no connection (OSError)")
    assert sent(late, NOW) == late


def test_a_permanent_refusal_fails_at_once_and_a_sent_one_stays_sent():
    assert refused(_notification("copy_failed"), "550 permanent", NOW).state == "failed"
    done = sent(_notification("copy_failed"), NOW)
    assert (done.state, done.attempts) == ("sent", 1) and refused(done, "550", NOW) == done
