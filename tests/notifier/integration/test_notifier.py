"""The notifier against the stack's Postfix (relaying to the aiosmtpd sink) and, for the failure
cases, an SMTP server of the test's own: the seed's mails decoded as a client would, one mail per
event however often it comes, 4xx or no server retried until it passes, 5xx failed at once, a line
break refused, a crash between sending and recording at most one extra mail with the same
Message-ID, and the end of a real purge and a real password change."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

from aiosmtpd.controller import Controller

from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import ChangePassword, CreateAccount, DeleteAccount, Login, PasswordChanged
from shared.contracts.copyjob import SERVICE as COPYJOB
from shared.contracts.copyjob import JobCompleted, JobFailed, PurgeMailbox
from shared.contracts.notifier import SERVICE, GetNotifications
from shared.registry import SERVICES
from tests.support import ServiceProcess, eventually, free_port, new_address, publish_event, subjects_in

PASSWORD = "Strong-Passw0rd!"
DONE_SUBJECT = "【重要】CPIより メールデータコピーが完了いたしました。"
FAILED_SUBJECT = "【重要】CPIより メールデータコピーの再操作をお願いします。"


def _completed(address: str, to: str) -> JobCompleted:
    return JobCompleted(job_id=uuid.uuid4().hex, address=address, notification_address=to, copied=3, already_there=0,
                        copied_bytes=100, skipped_too_big=0)


def _mails(sink, to: str) -> list:
    return [message_from_bytes(raw, policy=default) for raw in sink.to(to)]


async def _notifications(client, admin_token: str, address: str, job_id: str | None = None) -> list[dict]:
    reply = await client.request(SERVICE, GetNotifications(actor_token=admin_token, address=address, job_id=job_id))
    assert reply.status == "accepted", reply
    return reply.result["notifications"]


async def test_one_mail_per_event_the_seeds_words_through_postfix(client, admin_token, amqp_url, notifier_service, smtp_sink):
    address, to = new_address(), f"n{uuid.uuid4().hex[:8]}@example.net"
    done = _completed(address, to)
    await publish_event(amqp_url, done)
    await publish_event(amqp_url, done)  # redelivered: nothing new
    failed = JobFailed(job_id=uuid.uuid4().hex, address=address, notification_address=to, reason="source_unreachable")
    await publish_event(amqp_url, failed)

    async def both_arrived() -> bool:
        return len(smtp_sink.to(to)) >= 2

    await eventually(both_arrived, what="the two mails at the sink")
    mails = {m["Subject"]: m for m in _mails(smtp_sink, to)}
    assert set(mails) == {DONE_SUBJECT, FAILED_SUBJECT} and len(smtp_sink.to(to)) == 2
    local = address.split("@")[0]
    assert mails[DONE_SUBJECT].get_content().startswith(f"{local[0]}{'*' * (len(local) - 2)}{local[-1]}@example.jp へ")
    assert "原因: コピー元のサーバーに接続できませんでした" in mails[FAILED_SUBJECT].get_content()
    assert mails[DONE_SUBJECT]["Message-ID"] == f"<{done.message_id}@mailss.invalid>"
    assert mails[DONE_SUBJECT]["Auto-Submitted"] == "auto-generated"

    async def recorded() -> bool:
        return sorted(n["state"] for n in await _notifications(client, admin_token, address)) == ["sent", "sent"]

    await eventually(recorded, what="both recorded sent")
    [one] = await _notifications(client, admin_token, address, job_id=done.job_id)
    assert (one["kind"], one["attempts"]) == ("copy_completed", 1)


class _Flaky:
    """An SMTP server that answers 451 to the first `temporary` attempts, 550 to refuse@, else takes the mail."""

    def __init__(self, temporary: int) -> None:
        self.temporary, self.attempts, self.mails = temporary, [], []

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:
        self.attempts.append(address)
        if address.startswith("refuse@"):
            return "550 5.1.1 no such user"
        if self.temporary > 0:
            self.temporary -= 1
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.mails.append(message_from_bytes(envelope.content, policy=default))
        return "250 OK"


@asynccontextmanager
async def _own_notifier(notifier_service, notifier_env, amqp_url, port: int,
                        module: str = SERVICES["notifier"].module) -> AsyncIterator[ServiceProcess]:
    """The suite's notifier stopped, one of the test's own (sending to `port`, which asks no login) in its place."""
    await notifier_service.stop()
    plain = {name: value for name, value in notifier_env.items() if name != "SMTP_PASSWORD"}
    own = ServiceProcess(replace(SERVICES["notifier"], module=module), {**plain, "SMTP_PORT": str(port)}, amqp_url,
                         instance="test-notifier-own")
    try:
        await own.start()
        yield own
    finally:
        await own.stop()
        await notifier_service.start()


async def test_no_server_then_4xx_is_retried_until_it_passes_and_5xx_fails_at_once(
        client, admin_token, amqp_url, notifier_service, notifier_env, events):
    port, server = free_port(), _Flaky(temporary=2)
    address = new_address()
    async with _own_notifier(notifier_service, notifier_env, amqp_url, port):
        done, refused = _completed(address, "later@example.net"), _completed(address, "refuse@example.net")
        await publish_event(amqp_url, done)
        await publish_event(amqp_url, refused)

        async def tried_without_a_server() -> bool:
            return any(n["attempts"] >= 1 and n["state"] == "pending" for n in await _notifications(client, admin_token, address))

        await eventually(tried_without_a_server, what="an attempt with no server")
        controller = Controller(server, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            async def ended() -> bool:
                return {n["to"]: n["state"] for n in await _notifications(client, admin_token, address)} == {
                    "later@example.net": "sent", "refuse@example.net": "failed"}

            await eventually(ended, timeout=60, what="one sent, one failed")
        finally:
            controller.stop()
    shown = {n["to"]: n for n in await _notifications(client, admin_token, address)}
    assert shown["refuse@example.net"]["last_error"] == "550 recipient refused"
    assert server.attempts.count("refuse@example.net") == 1
    assert shown["later@example.net"]["attempts"] >= 4  # no server at least once, 451 twice, then sent
    assert len(server.mails) == 1 and server.mails[0]["Message-ID"] == f"<{done.message_id}@mailss.invalid>"
    assert events.of_type("NotificationFailed", notification_id=str(refused.message_id))


async def test_a_crash_between_sending_and_recording_sends_at_most_once_more_with_the_same_id(
        client, admin_token, amqp_url, notifier_service, notifier_env):
    port, server = free_port(), _Flaky(temporary=0)
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    address = new_address()
    done = _completed(address, "crash@example.net")
    try:
        async with _own_notifier(notifier_service, notifier_env, amqp_url, port, "tests.notifier.crashing") as faulty:
            await publish_event(amqp_url, done)
            await eventually(lambda: _exited(faulty), what="the fault point")
            again = ServiceProcess(SERVICES["notifier"], faulty.env, amqp_url, instance="test-notifier-again")
            await again.start()
            try:
                async def recorded() -> bool:
                    return [n["state"] for n in await _notifications(client, admin_token, address)] == ["sent"]

                await eventually(recorded, timeout=30, what="the notification recorded sent")
            finally:
                await again.stop()
    finally:
        controller.stop()
    assert 1 <= len(server.mails) <= 2
    assert {m["Message-ID"] for m in server.mails} == {f"<{done.message_id}@mailss.invalid>"}


async def _exited(process: ServiceProcess) -> bool:
    return process.process is not None and process.process.returncode is not None


async def test_a_line_break_in_an_address_is_refused_and_sends_nothing(client, admin_token, amqp_url, notifier_service,
                                                                      smtp_sink):
    address = new_address()
    await publish_event(amqp_url, _completed(address, "a@example.net\r\nBcc: victim@example.org"))

    async def failed() -> bool:
        return [(n["state"], n["last_error"]) for n in await _notifications(client, admin_token, address)] == [
            ("failed", "unsafe header value")]

    await eventually(failed, what="the notification refused")
    assert not smtp_sink.to("victim@example.org")


async def test_a_real_purge_and_password_change_are_told_to_the_account_and_deletion_erases_it(
        tmp_path, client, admin_token, client_url, amqp_url, copyjob_service, notifier_service):
    from tests.mailctl.test_cli import run

    address = new_address()
    assert (await client.request(ACCOUNT, CreateAccount(actor_token=admin_token, address=address, plan="kwc",
                                                        initial_password=PASSWORD))).status == "accepted"
    token = (await client.request(ACCOUNT, Login(login=address, password=PASSWORD))).result["token"]
    assert (await client.request(COPYJOB, PurgeMailbox(actor_token=token, address=address))).status == "accepted"
    assert (await client.request(ACCOUNT, ChangePassword(actor_token=admin_token, address=address,
                                                         new_password="Another-Passw0rd!"))).status == "accepted"

    async def both_in_the_inbox() -> bool:
        subjects = await asyncio.to_thread(subjects_in, address, "INBOX")
        return {"【重要】CPIより メールデータの削除が完了いたしました。", "【重要】CPIより パスワードが変更されました。"} <= set(subjects)

    await eventually(both_in_the_inbox, timeout=60, what="both notices delivered to the account")
    assert len(await _notifications(client, admin_token, address)) == 2
    assert (await run(tmp_path, client_url, "login", address, "--password-stdin", stdin="Another-Passw0rd!\n")).returncode == 0
    shown = await run(tmp_path, client_url, "copy", "notifications")
    assert shown.returncode == 0 and "purge_completed" in shown.stdout and "password_changed" in shown.stdout, shown.stdout
    assert (await client.request(ACCOUNT, DeleteAccount(actor_token=admin_token, address=address))).status == "accepted"

    async def erased() -> bool:
        return await _notifications(client, admin_token, address) == []

    await eventually(erased, what="the records erased")
    late = _completed(address, "late@example.net").model_copy(update={"occurred_at": datetime.now(UTC) - timedelta(minutes=1)})
    after = _completed(address, "after@example.net")  # as if the address were made anew and used
    await publish_event(amqp_url, late)
    await publish_event(amqp_url, after)

    async def only_the_newer() -> bool:
        return [n["to"] for n in await _notifications(client, admin_token, address)] == ["after@example.net"]

    await eventually(only_the_newer, what="the newer event's notification alone")


async def test_a_neighbour_cannot_speak_for_the_service_that_owns_an_event(client, admin_token, amqp_url, vhost, operator,
                                                                           notifier_service):
    """Ensure an event is believed only from the service owning its type, under its own routing key: "password
    changed" published by the copy job's user under its own key, or by the account service's user under
    another of its keys, is set aside for operators and mails nobody, while the real one is mailed."""
    address = new_address()
    forged = PasswordChanged(address=address, actor=address, sessions_valid_from=datetime.now(UTC))
    misrouted = PasswordChanged(address=address, actor=address, sessions_valid_from=datetime.now(UTC))
    real = PasswordChanged(address=address, actor=address, sessions_valid_from=datetime.now(UTC))
    before = await _set_aside_count(operator, vhost)

    await publish_event(amqp_url, forged, principal="copyjob", routing_key="copyjob.job.completed")
    await publish_event(amqp_url, misrouted, routing_key="account.account.deleted")
    await publish_event(amqp_url, real)

    async def the_real_one_recorded() -> bool:
        return len(await _notifications(client, admin_token, address)) >= 1

    await eventually(the_real_one_recorded, what="the real event's notification")
    await eventually(lambda: _more_set_aside(operator, vhost, before + 2), timeout=30, what="both set aside in notifier.events.dlq")
    assert [n["kind"] for n in await _notifications(client, admin_token, address)] == ["password_changed"]


async def _set_aside_count(operator, vhost: str) -> int:
    return int((await asyncio.to_thread(operator.queue, vhost, "notifier.events.dlq")).get("messages") or 0)


async def _more_set_aside(operator, vhost: str, count: int) -> bool:
    return await _set_aside_count(operator, vhost) >= count
