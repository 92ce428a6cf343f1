"""The account service against the real RabbitMQ, FerretDB and Dovecot."""

import asyncio
import json

import aio_pika
import pytest

from shared.client import CommandClient
from shared.contracts.account import (
    SERVICE,
    ChangeComment,
    ChangePassword,
    ChangeQuota,
    CreateAccount,
    DeleteAccount,
    GetAccount,
    Login,
)
from tests.support import deliver, deliver_over_lmtp, eventually, imap_login, mint, new_address

STRONG = "Strong-Passw0rd!"
STRONG_2 = "Another-Passw0rd#"


async def create(client: CommandClient, token: str, address: str, plan: str = "business-standard", **extra) -> None:
    reply = await client.request(SERVICE, CreateAccount(
        actor_token=token, address=address, plan=plan, initial_password=STRONG if plan != "sv-basic" else "abc12345x", **extra))
    assert reply.status == "accepted", reply


async def still_signs_in(client: CommandClient, address: str, password: str = STRONG) -> bool:
    """The stored state, asked directly (Dovecot may serve a file it read in the same second)."""
    return (await client.request(SERVICE, Login(login=address, password=password))).status == "accepted"


async def test_created_account_logs_in_over_imap(client, admin_token):
    """Ensure an account created by an admin can log in to Dovecot over IMAP with its password."""
    address = new_address()
    await create(client, admin_token, address)
    await eventually(lambda: imap_login(address, STRONG), what="IMAP login with the initial password")
    assert not await imap_login(address, "Wrong-Passw0rd!")


async def test_an_account_shows_what_dovecot_counts_in_its_mailbox(client, admin_token):
    """Ensure GetAccount's usage is Dovecot's own quota count (its maildirsize), on sv-basic too, which
    has no limit, as mail arrives."""
    address = new_address()
    await create(client, admin_token, address, plan="sv-basic")
    await eventually(lambda: asyncio.to_thread(deliver, address, body="x" * 5000 + "\r\n"), what="a first delivery")
    assert await asyncio.to_thread(deliver, address, body="y" * 3000 + "\r\n")
    shown: dict = {}

    async def counted() -> bool:
        shown.update((await client.request(SERVICE, GetAccount(actor_token=admin_token, address=address))).result)
        return shown["usage"]["messages"] == 2

    await eventually(counted, what="both messages in the account's usage")
    assert shown["quota_mb"] is None and 8000 < shown["usage"]["bytes"] < 12000


async def test_changed_password_replaces_the_old_one_everywhere(client, admin_token):
    """Ensure after ChangePassword the new password works and the old fails, over IMAP and Login."""
    address = new_address()
    await create(client, admin_token, address)
    user_token = (await client.request(SERVICE, Login(login=address, password=STRONG))).result["token"]
    reply = await client.request(SERVICE, ChangePassword(actor_token=user_token, address=address, new_password=STRONG_2,
                                                         current_password=STRONG))
    assert reply.status == "accepted", reply
    await eventually(lambda: imap_login(address, STRONG_2), what="the new password to work over IMAP")
    await eventually(_fails(address, STRONG), what="the old password to fail over IMAP")
    assert (await client.request(SERVICE, Login(login=address, password=STRONG_2))).status == "accepted"
    old = await client.request(SERVICE, Login(login=address, password=STRONG))
    assert (old.status, old.code) == ("rejected", "invalid_credentials")


async def test_user_cannot_change_another_users_password(client, admin_token, issuer):
    """Ensure user A is forbidden to change user B's password, and B's password still works."""
    alice, bob = new_address(), new_address()
    await create(client, admin_token, alice)
    await create(client, admin_token, bob)
    reply = await client.request(SERVICE, ChangePassword(actor_token=mint(issuer, alice), address=bob, new_password=STRONG_2))
    assert (reply.status, reply.code) == ("rejected", "forbidden")
    assert await still_signs_in(client, bob)


@pytest.mark.parametrize("make", [
    lambda token, address: CreateAccount(actor_token=token, address=new_address(), plan="kwc", initial_password=STRONG),
    lambda token, address: DeleteAccount(actor_token=token, address=address),
    lambda token, address: ChangeQuota(actor_token=token, address=address, quota_mb=10),
    lambda token, address: ChangeComment(actor_token=token, address=address, comment="mine now"),
], ids=["create", "delete", "quota", "comment"])
async def test_non_admin_cannot_run_admin_commands(client, admin_token, issuer, make):
    """Ensure a user gets `forbidden` for every admin-only command, even on their own address."""
    address = new_address()
    await create(client, admin_token, address)
    reply = await client.request(SERVICE, make(mint(issuer, address), address))
    assert (reply.status, reply.code) == ("rejected", "forbidden")
    assert await still_signs_in(client, address)


async def test_admin_of_another_domain_is_forbidden(client, admin_token):
    """Ensure an admin acts only within their own domains."""
    reply = await client.request(SERVICE, CreateAccount(
        actor_token=admin_token, address=new_address("other.example"), plan="kwc", initial_password=STRONG))
    assert (reply.status, reply.code) == ("rejected", "forbidden")


async def test_token_of_an_admin_that_does_not_exist_is_refused(client, admin_token, issuer):
    """Ensure a validly signed admin token acts on nothing once no such admin is stored."""
    address = new_address()
    await create(client, admin_token, address)
    ghost = mint(issuer, "ghostadmin", role="admin", domains=("example.jp",))
    reply = await client.request(SERVICE, DeleteAccount(actor_token=ghost, address=address))
    assert (reply.status, reply.code) == ("rejected", "unauthenticated")
    assert await still_signs_in(client, address)


async def test_quota_is_refused_on_sv_basic(client, admin_token, events):
    """Ensure ChangeQuota on an sv-basic account is refused and nothing changes."""
    address = new_address()
    await create(client, admin_token, address, plan="sv-basic")
    reply = await client.request(SERVICE, ChangeQuota(actor_token=admin_token, address=address, quota_mb=500))
    assert (reply.status, reply.code) == ("rejected", "not_allowed_on_plan")
    assert reply.errors[0].field == "quota_mb"
    marker = await client.request(SERVICE, ChangeComment(actor_token=admin_token, address=address, comment="after"))
    assert marker.status == "accepted"
    await eventually(lambda: _has(events, "CommentChanged", address=address), what="the marker event")
    assert not events.of_type("QuotaChanged", address=address)


async def test_deleted_account_cannot_log_in(client, admin_token, events):
    """Ensure after DeleteAccount the address can log in neither over IMAP nor with Login."""
    address = new_address()
    await create(client, admin_token, address)
    reply = await client.request(SERVICE, DeleteAccount(actor_token=admin_token, address=address))
    assert reply.status == "accepted", reply
    await eventually(_fails(address, STRONG), what="IMAP login to fail")
    assert (await client.request(SERVICE, Login(login=address, password=STRONG))).code == "invalid_credentials"
    await eventually(lambda: _has(events, "AccountDeleted", address=address), what="AccountDeleted event")


def _fails(address: str, password: str):
    """Dovecot sees a change at the first lookup in a later second (it stats a file once a second)."""
    async def check() -> bool:
        return not await imap_login(address, password)
    return check


async def _has(events, event_type: str, **fields) -> bool:
    return bool(events.of_type(event_type, **fields))


async def test_same_command_delivered_twice_is_applied_once(client, admin_token, events):
    """Ensure a duplicated command (same message_id) gets the same reply and one event only."""
    address = new_address()
    await create(client, admin_token, address)
    command = ChangeComment(actor_token=admin_token, address=address, comment="first")
    first = await client.request(SERVICE, command)
    second = await client.request(SERVICE, command)
    assert first == second and first.status == "accepted"
    await eventually(lambda: _has(events, "CommentChanged", address=address), what="CommentChanged")
    marker = ChangeComment(actor_token=admin_token, address=address, comment="marker")
    assert (await client.request(SERVICE, marker)).status == "accepted"
    await eventually(lambda: _has(events, "CommentChanged", address=address, comment="marker"), what="marker")
    assert len(events.of_type("CommentChanged", address=address, comment="first")) == 1


async def dead_letters(amqp_url: str, message_id: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    found = []
    async with connection:
        channel = await connection.channel()
        for shard in range(4):
            queue = await channel.declare_queue(f"account.commands.{shard}.dlq", passive=True)
            while message := await queue.get(fail=False, no_ack=False):
                if message.message_id == message_id:
                    found.append(message)
                    await message.ack()
                else:
                    await message.nack(requeue=True)
                    break
    return found


async def dead_lettered(amqp_url: str, message_id: str, *, what: str) -> list:
    """Wait until the message shows up in a dead-letter queue; return its copies there."""
    found: list = []

    async def landed() -> bool:
        found.extend(await dead_letters(amqp_url, message_id))
        return bool(found)

    await eventually(landed, what=what)
    return found


@pytest.mark.parametrize("body", [b"this is not json", json.dumps({"type": "ChangePassword", "address": 42}).encode(),
                                  json.dumps({"type": "NoSuchCommand"}).encode()], ids=["not-json", "bad-field", "unknown-type"])
async def test_invalid_message_is_dead_lettered_with_reason(client, admin_token, amqp_url, body):
    """Ensure a malformed or schema-invalid message lands in the DLQ with its reason and the consumer keeps serving."""
    address = new_address()
    probe = ChangeComment(actor_token=admin_token, address=address, comment="x")
    await client.send(SERVICE, probe, body=body, reply_to=None)
    found = await dead_lettered(amqp_url, str(probe.message_id), what="the invalid message in a dead-letter queue")
    assert "x-death-reason" in found[0].headers and found[0].headers["x-death-reason"]
    await create(client, admin_token, address)


async def test_dead_lettered_message_keeps_no_secret(client, admin_token, amqp_url):
    """Ensure a schema-invalid command carrying a password is dead-lettered with the password redacted."""
    probe = ChangePassword(actor_token=admin_token, address=new_address(), new_password="Leaky-Secret-123!")
    body = json.dumps({**json.loads(probe.model_dump_json()), "unexpected": 1}).encode()
    await client.send(SERVICE, probe, body=body)
    found = await dead_lettered(amqp_url, str(probe.message_id), what="dead-lettered command")
    assert b"Leaky-Secret-123!" not in found[0].body and admin_token.encode() not in found[0].body


async def test_invalid_message_is_answered(client, admin_token):
    """Ensure the sender of a schema-invalid command still gets a `rejected` reply naming the field."""
    command = ChangeQuota(actor_token=admin_token, address=new_address(), quota_mb=5)
    body = json.dumps({**json.loads(command.model_dump_json()), "quota_mb": "lots"}).encode()
    client_reply = await _request_raw(client, command, body)
    assert client_reply.code == "invalid_message"
    assert any(error.field == "quota_mb" for error in client_reply.errors)


async def _request_raw(client: CommandClient, command, body: bytes):
    import asyncio

    from shared.client import DIRECT_REPLY_TO

    future = asyncio.get_running_loop().create_future()
    client._waiting[str(command.message_id)] = future
    await client.send(SERVICE, command, body=body, reply_to=DIRECT_REPLY_TO)
    return await asyncio.wait_for(future, 30)


async def test_login_failures_lock_the_account(client, admin_token, events):
    """Ensure 5 wrong passwords lock sign-in (even the right password is refused) and are audited without the password."""
    address = new_address()
    await create(client, admin_token, address)
    codes = [(await client.request(SERVICE, Login(login=address, password="Wrong-guess-123!"))).code for _ in range(5)]
    assert codes == ["invalid_credentials"] * 4 + ["locked"]
    reply = await client.request(SERVICE, Login(login=address, password=STRONG))
    assert (reply.status, reply.code) == ("rejected", "locked")
    await eventually(lambda: _has_count(events, "LoginFailed", 6, login=address), what="6 LoginFailed events")
    assert all("Wrong-guess" not in m["body"] for m in events.received)


async def _has_count(events, event_type: str, count: int, **fields) -> bool:
    return len(events.of_type(event_type, **fields)) >= count




async def test_command_with_a_foreign_shard_key_is_set_aside(client, admin_token, amqp_url):
    """Ensure a command whose x-account header names another account is dead-lettered, not applied."""
    from shared.topology import ACCOUNT_KEY_HEADER

    address = new_address()
    probe = CreateAccount(actor_token=admin_token, address=address, plan="kwc", initial_password=STRONG)
    await client.send(SERVICE, probe, headers={ACCOUNT_KEY_HEADER: "someone-else@example.jp"})
    found = await dead_lettered(amqp_url, str(probe.message_id), what="the mis-keyed command in a dead-letter queue")
    assert ACCOUNT_KEY_HEADER in found[0].headers["x-death-reason"]
    assert STRONG.encode() not in found[0].body
    assert not await still_signs_in(client, address)


async def test_quota_is_enforced_by_the_mail_server_and_follows_changes(client, admin_token):
    """Ensure mail beyond the quota is refused at delivery, and a raised quota lets it in."""
    import asyncio

    address = new_address()
    await create(client, admin_token, address, plan="kwc", quota_mb=1)
    assert await asyncio.to_thread(deliver_over_lmtp, address, 700_000)
    assert not await asyncio.to_thread(deliver_over_lmtp, address, 700_000)
    reply = await client.request(SERVICE, ChangeQuota(actor_token=admin_token, address=address, quota_mb=10))
    assert reply.status == "accepted"

    async def accepted_again() -> bool:
        return await asyncio.to_thread(deliver_over_lmtp, address, 700_000)

    await eventually(accepted_again, what="delivery under the raised quota")


async def test_deleted_account_receives_nothing(client, admin_token):
    """Ensure the mail server refuses delivery to a deleted account."""
    import asyncio

    address = new_address()
    await create(client, admin_token, address)
    assert await asyncio.to_thread(deliver_over_lmtp, address, 1_000)
    assert (await client.request(SERVICE, DeleteAccount(actor_token=admin_token, address=address))).status == "accepted"

    async def refused() -> bool:
        return not await asyncio.to_thread(deliver_over_lmtp, address, 1_000)

    await eventually(refused, what="delivery to be refused")


def _inbox_subjects(address: str, password: str) -> list[str]:
    import imaplib
    import os

    with imaplib.IMAP4("127.0.0.1", int(os.environ.get("DOVECOT_IMAP_PORT", "10143")), timeout=10) as imap:
        imap.login(address, password)
        imap.select("INBOX", readonly=True)
        _, found = imap.search(None, "ALL")
        subjects = []
        for number in found[0].split():
            _, data = imap.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(data[0][1].decode().strip())
        return subjects


async def test_mail_to_a_subaddress_reaches_the_account(client, admin_token):
    """Ensure mail to name+news@ is delivered to name@ (subaddressing), which is why no account may contain '+'."""
    import asyncio

    address = new_address()
    await create(client, admin_token, address)
    local, _, domain = address.partition("@")

    assert await asyncio.to_thread(deliver_over_lmtp, f"{local}+news@{domain}", 1_000)
    assert "Subject: size 1000" in await asyncio.to_thread(_inbox_subjects, address, STRONG)
    refused = await client.request(SERVICE, CreateAccount(
        actor_token=admin_token, address=f"{local}+news@{domain}", plan="kwc", initial_password=STRONG))
    assert (refused.status, refused.errors[0].code) == ("rejected", "subaddress_delimiter")
