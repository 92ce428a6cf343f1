"""The rules service through the broker, and then by mail delivered to Dovecot (LMTP, as Postfix
does), looking at what a user would see over IMAP and at what leaves through the SMTP sink."""

import asyncio

from shared.client import CommandClient
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount, DeleteAccount, Login
from shared.contracts.rules import (
    SERVICE,
    DeleteAutoreply,
    GetRules,
    SetAutoreply,
    SetReceive,
    SetSpamSort,
    SetSpamTag,
)
from tests.support import deliver, eventually, holds, new_address, stack, subjects_in

STRONG = "Strong-Passw0rd!"
BASIC = "basic123x"
SPAM = {"X-Spam-Flag": "YES"}


async def _account(client: CommandClient, admin_token: str, plan: str = "kwc") -> str:
    address = new_address()
    reply = await client.request(ACCOUNT, CreateAccount(actor_token=admin_token, address=address, plan=plan,
                                                        initial_password=BASIC if plan == "sv-basic" else STRONG))
    assert reply.status == "accepted", reply

    async def adopted() -> bool:
        return (await client.request(SERVICE, GetRules(actor_token=admin_token, address=address))).status == "accepted"

    await eventually(adopted, what="the rules service to know the new account")
    return address


async def _rules(client: CommandClient, token: str, address: str) -> dict:
    reply = await client.request(SERVICE, GetRules(actor_token=token, address=address))
    assert reply.status == "accepted", reply
    return reply.result


async def _applied(client: CommandClient, token: str, address: str) -> dict:
    result: dict = {}

    async def done() -> bool:
        result.update(await _rules(client, token, address))
        return result["mail_server"]["state"] == "applied"

    await eventually(done, what="the mail server to run the rules")
    return result


async def _accepted(client: CommandClient, command) -> None:
    reply = await client.request(SERVICE, command)
    assert reply.status == "accepted", reply


async def test_a_new_account_starts_with_the_defaults(client, admin_token, rules_service):
    """Ensure AccountCreated gives all switches off, receive on, no autoreply, and nothing pending."""
    address = await _account(client, admin_token)

    rules = await _rules(client, admin_token, address)

    assert (rules["spam_tag"], rules["spam_sort"], rules["receive"], rules["autoreply"]) == (False, False, True, None)
    assert rules["mail_server"]["state"] == "applied"


async def test_spam_is_tagged_and_filed_while_ham_is_untouched(client, admin_token, rules_service):
    """Ensure flagged mail arrives in Junk with "[SPAM] " before its subject, and other mail in INBOX as sent."""
    address = await _account(client, admin_token)
    await _accepted(client, SetSpamTag(actor_token=admin_token, address=address, on=True))
    await _accepted(client, SetSpamSort(actor_token=admin_token, address=address, on=True))
    assert (await _applied(client, admin_token, address))["version"] >= 3

    assert await asyncio.to_thread(deliver, address, subject="cheap pills", headers=SPAM)
    assert await asyncio.to_thread(deliver, address, subject="lunch?")

    assert await asyncio.to_thread(subjects_in, address, "Junk") == ["[SPAM] cheap pills"]
    assert await asyncio.to_thread(subjects_in, address, "INBOX") == ["lunch?"]


async def test_tag_only_keeps_spam_in_the_inbox(client, admin_token, rules_service):
    address = await _account(client, admin_token)
    await _accepted(client, SetSpamTag(actor_token=admin_token, address=address, on=True))
    await _applied(client, admin_token, address)

    assert await asyncio.to_thread(deliver, address, subject="日本語の件名", headers=SPAM)

    assert await asyncio.to_thread(subjects_in, address, "INBOX") == ["[SPAM] 日本語の件名"]


async def test_the_autoreply_goes_once_per_sender_and_never_to_automatic_mail(client, admin_token, rules_service,
                                                                             smtp_sink):
    """Ensure the reply reaches a sender once a day, and none goes to auto-generated, list or bulk mail."""
    address = await _account(client, admin_token)
    await _accepted(client, SetAutoreply(actor_token=admin_token, address=address, text="休暇中です。\n戻りは月曜です。"))
    await _applied(client, admin_token, address)
    person, robot, lister, bulk = (f"{n}-{address.partition('@')[0]}@example.net" for n in ("p", "r", "l", "b"))

    for _ in range(2):
        assert await asyncio.to_thread(deliver, address, sender=person)
    assert await asyncio.to_thread(deliver, address, sender=robot, headers={"Auto-Submitted": "auto-generated"})
    assert await asyncio.to_thread(deliver, address, sender=lister, headers={"List-Id": "<news.example.net>"})
    assert await asyncio.to_thread(deliver, address, sender=bulk, headers={"Precedence": "bulk"})

    async def replied() -> bool:
        return bool(smtp_sink.to(person))

    await eventually(replied, what="the autoreply at the sink")
    await asyncio.sleep(1)
    [reply] = smtp_sink.to(person)
    assert b"Auto-Submitted: auto-replied" in reply and "休暇中です".encode() in _decoded(reply)
    assert not (smtp_sink.to(robot) or smtp_sink.to(lister) or smtp_sink.to(bulk))
    await _accepted(client, DeleteAutoreply(actor_token=admin_token, address=address))
    assert (await _applied(client, admin_token, address))["autoreply"] is None


def _decoded(raw: bytes) -> bytes:
    import email

    message = email.message_from_bytes(raw)
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True)


async def test_receive_off_stores_nothing_but_still_replies(client, admin_token, rules_service, smtp_sink):
    """Ensure with receive off (loss accepted) nothing is stored, and the autoreply still goes out."""
    address = await _account(client, admin_token)
    refused = await client.request(SERVICE, SetReceive(actor_token=admin_token, address=address, on=False))
    assert (refused.status, refused.errors[0].field) == ("rejected", "accept_loss")
    await _accepted(client, SetAutoreply(actor_token=admin_token, address=address, text="Away"))
    await _accepted(client, SetReceive(actor_token=admin_token, address=address, on=False, accept_loss=True))
    await _applied(client, admin_token, address)
    sender = f"s-{address.partition('@')[0]}@example.net"

    assert await asyncio.to_thread(deliver, address, sender=sender)

    await eventually(lambda: holds(bool(smtp_sink.to(sender))), what="the autoreply while receive is off")
    assert await asyncio.to_thread(subjects_in, address, "INBOX") == []



async def test_rules_are_the_owners_and_their_admins_only(client, admin_token, issuer, rules_service):
    """Ensure a user reads and changes only their own rules, and an admin only within its domains."""
    from tests.support import mint

    address, other = await _account(client, admin_token), await _account(client, admin_token)
    token = (await client.request(ACCOUNT, Login(login=address, password=STRONG))).result["token"]
    stranger_admin = mint(issuer, "elsewhere", role="admin", domains=("example.com",))

    assert (await client.request(SERVICE, GetRules(actor_token=token, address=address))).status == "accepted"
    for command in (GetRules(actor_token=token, address=other), SetSpamTag(actor_token=token, address=other, on=True),
                    GetRules(actor_token=stranger_admin, address=address)):
        reply = await client.request(SERVICE, command)
        assert (reply.status, reply.code) == ("rejected", "forbidden"), command
    assert (await _rules(client, admin_token, other))["version"] == 1


async def test_sv_basic_refuses_auto_sort_and_a_refusal_changes_nothing(client, admin_token, rules_service):
    address = await _account(client, admin_token, plan="sv-basic")

    sort = await client.request(SERVICE, SetSpamSort(actor_token=admin_token, address=address, on=True))
    too_long = await client.request(SERVICE, SetAutoreply(actor_token=admin_token, address=address, text="あ" * 301))

    assert (sort.status, sort.code) == ("rejected", "not_allowed_on_plan")
    assert (too_long.code, too_long.errors[0].code) == ("validation_failed", "too_wide")
    assert "600" in too_long.errors[0].message and "602" in too_long.errors[0].message
    assert (await _rules(client, admin_token, address))["version"] == 1


async def test_a_change_while_dovecot_is_down_is_pending_then_applied(client, admin_token, rules_service, events):
    """Ensure a change made while ManageSieve is away is accepted, shown pending with a reason
    (RulesApplyFailed), and applied once Dovecot is back, without restarting the service."""
    address = await _account(client, admin_token)
    await asyncio.to_thread(stack, "stop", "dovecot")
    try:
        await _accepted(client, SetSpamTag(actor_token=admin_token, address=address, on=True))

        async def failed() -> bool:
            return bool(events.of_type("RulesApplyFailed", address=address))

        await eventually(failed, what="RulesApplyFailed")
        pending = (await _rules(client, admin_token, address))["mail_server"]
        assert pending["state"] == "pending" and "ManageSieve" in pending["last_failure"]
    finally:
        await asyncio.to_thread(stack, "start", "dovecot")
    await _applied(client, admin_token, address)
    assert await asyncio.to_thread(deliver, address, subject="x", headers=SPAM)
    assert await asyncio.to_thread(subjects_in, address, "INBOX") == ["[SPAM] x"]


async def test_a_deleted_account_has_no_rules(client, admin_token, rules_service):
    address = await _account(client, admin_token)
    assert (await client.request(ACCOUNT, DeleteAccount(actor_token=admin_token, address=address))).status == "accepted"

    async def dropped() -> bool:
        reply = await client.request(SERVICE, GetRules(actor_token=admin_token, address=address))
        return reply.status == "rejected" and reply.code == "not_found"

    await eventually(dropped, what="the rules dropped with the account")
