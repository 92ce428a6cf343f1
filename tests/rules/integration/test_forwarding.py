"""Forwarding by mail through the real stack: Postfix (milter, SRS, the forwarding map), Dovecot's
Sieve, and the outside world's SMTP sink. What the user sees over IMAP, what leaves at the sink."""

import asyncio
import email
import email.policy
import os
import smtplib
import uuid

from services.rules.adapters.postfix_map import ForwardMap
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import DeleteAccount
from shared.contracts.rules import SERVICE, AddForwarding, GetRules, RemoveForwarding, SetAutoreply, SetReceive
from tests.rules.mail_world import GTUBE, STRONG, at_sink, changed_rules, in_mailbox, outside, rules_account, send, stored
from tests.support import RUN, eventually, holds, subjects_in


async def test_all_to_three_destinations_keeps_a_copy_with_srs_only_on_the_forwarded_ones(
        client, admin_token, rules_service, smtp_sink):
    """Ensure every destination gets one copy with an SRS envelope sender and no trace of the forwarding
    address (its token would let anyone forge the loop marker), the stored copy keeps the original
    sender, and a bounce to the SRS address reaches the original sender."""
    address = await rules_account(client, admin_token)
    destinations = [outside() for _ in range(3)]
    rules = await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all",
                                                destinations=destinations))
    assert [f["destinations"] for f in rules["forwards"]] == [[d] for d in sorted(destinations)]
    sender = outside("alice")

    await asyncio.to_thread(send, address, subject="to everyone", sender=sender)

    for destination in destinations:
        [(srs_sender, content)] = await at_sink(smtp_sink, destination)
        assert srs_sender.startswith("SRS0=") and srs_sender.endswith(f"@{os.environ['SRS_DOMAIN']}")
        forwarded = email.message_from_bytes(content, policy=email.policy.default)
        assert forwarded["Subject"] == "to everyone" and "X-MailSS-Forwarded-By" not in forwarded
        assert b"forward.mailss.invalid" not in content  # no forwarding address (its token) in any header
    [kept] = await asyncio.to_thread(stored, address)
    assert kept["Subject"] == "to everyone" and kept["Return-Path"] == f"<{sender}>"

    await asyncio.to_thread(send, srs_sender, subject="Undelivered Mail Returned to Sender", envelope_from="")
    [(bounce_sender, _)] = await at_sink(smtp_sink, sender)
    assert bounce_sender in ("", "<>")

    local, domain = srs_sender.split("@")
    forged = local[:5] + ("AAAA" if local[5:9] != "AAAA" else "BBBB") + local[9:]  # SRS0=HHHH=...: another hash
    refused = {"a valid SRS address, but no bounce": (srs_sender, "someone@example.net"),
               "a hash that is not ours": (f"{forged}@{domain}", ""),
               "not an SRS address": (f"postmaster@{domain}", ""), "a relay attempt": (f"{sender}@{domain}", "")}
    for why, (recipient, envelope_from) in refused.items():
        try:
            await asyncio.to_thread(send, recipient, subject=why, envelope_from=envelope_from)
        except smtplib.SMTPRecipientsRefused as refusal:
            assert refusal.recipients[recipient][0] in (550, 554), (why, refusal.recipients)
        else:
            raise AssertionError(f"{why}: accepted")


async def test_a_loop_through_an_outside_forwarder_ends_at_our_second_redirect(client, admin_token, rules_service,
                                                                             smtp_sink):
    """Ensure mail an outside destination forwards back, as it came (same Message-ID), is kept but not
    forwarded again: Sieve remembers what it redirected (sieve_redirect_duplicate_period), so the loop
    ends; distinct mail still goes out."""
    address = await rules_account(client, admin_token)
    destination = outside("loop")
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all",
                                        destinations=[destination]))

    await asyncio.to_thread(send, address, subject="round trip")
    [(_, content)] = await at_sink(smtp_sink, destination)
    log = RUN / "logs" / "dovecot.log"
    start = log.stat().st_size
    with smtplib.SMTP("127.0.0.1", int(os.environ["POSTFIX_SMTP_PORT"]), timeout=30) as smtp:  # the forwarder sends it back
        smtp.sendmail(destination, [address], content)
    assert sorted(await in_mailbox(address, 2)) == ["round trip", "round trip"]
    with log.open(errors="replace") as lines:  # written at the delivery, before the copy was stored
        lines.seek(start)
        assert any(f"lmtp({address})" in line and "discarded duplicate forward" in line for line in lines)
    await asyncio.to_thread(send, address, subject="next one")
    await at_sink(smtp_sink, destination, count=2)

    subjects = [email.message_from_bytes(c, policy=email.policy.default)["Subject"] for c in smtp_sink.to(destination)]
    assert sorted(subjects) == ["next one", "round trip"]


async def test_from_and_subject_rules_match_hostile_keywords_exactly(client, admin_token, rules_service, smtp_sink):
    """Ensure a keyword with quotes, backslashes, Sieve syntax, full-width, look-alike and emoji text
    forwards exactly the mail that contains it (ASCII letters in either case) and nothing else."""
    address = await rules_account(client, admin_token)
    keyword = '"; discard; \\ 請求書 ＩＮＶ 😀'
    by_subject, by_from = outside("subject"), outside("from")
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="subject", match=keyword,
                                        destinations=[by_subject]))
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="from", match="Boss@Corp",
                                        destinations=[by_from]))
    subjects = {
        f"re: {keyword} march": True,
        f"RE: {keyword.upper()}": True,                         # ASCII letters match in either case
        '"; discard; \\ 請求書 ＩＮＶ': False,                   # the emoji missing
        '"; discard; \\ 請求書 INV 😀': False,                   # half-width look-alike
        '"; discard; \\ 請求書 ｉｎｖ 😀': False,                # no Unicode case folding
        '; discard; \\ 請求書 ＩＮＶ 😀': False,                 # the quote missing
    }
    for subject in subjects:
        await asyncio.to_thread(send, address, subject=subject, sender="someone@example.net")
    await asyncio.to_thread(send, address, subject="from the boss", sender="big.boss@corp.example")
    await asyncio.to_thread(send, address, subject="from a lookalike", sender="boss@c0rp.example")

    await in_mailbox(address, len(subjects) + 2)
    forwarded = sorted(email.message_from_bytes(c, policy=email.policy.default)["Subject"] for _, c in smtp_sink_to(smtp_sink, by_subject))
    assert forwarded == sorted(s for s, match in subjects.items() if match)
    await at_sink(smtp_sink, by_from)
    assert [email.message_from_bytes(c, policy=email.policy.default)["Subject"] for _, c in smtp_sink_to(smtp_sink, by_from)] == [
        "from the boss"]


def smtp_sink_to(sink, recipient: str) -> list[tuple[str, bytes]]:
    return [(sender, content) for sender, recipients, content in sink.messages if recipient in recipients]


async def test_300_destinations_each_get_one_copy(client, admin_token, rules_service, smtp_sink):
    """Ensure one message to an account forwarding all mail to 300 destinations reaches each once."""
    address = await rules_account(client, admin_token)
    tag = uuid.uuid4().hex[:8]
    destinations = [f"d{n:03d}-{tag}@example.org" for n in range(300)]
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all", destinations=destinations))

    await asyncio.to_thread(send, address, subject="to 300")

    await eventually(lambda: holds(all(smtp_sink.to(d) for d in destinations)), timeout=60, what="all 300 copies")
    assert all(len(smtp_sink.to(d)) == 1 for d in destinations)
    assert await asyncio.to_thread(subjects_in, address, "INBOX") == ["to 300"]


async def test_receive_off_stores_nothing_but_forwards_and_spam_is_never_forwarded(
        client, admin_token, rules_service, smtp_sink):
    """Ensure receive off with a forward of all mail stores what was forwarded nowhere but the destination,
    and keeps what was not forwarded (spam, mail too large to check) rather than lose it."""
    address = await rules_account(client, admin_token)
    destination = outside()
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all", destinations=[destination]))
    relay = await changed_rules(client, SetReceive(actor_token=admin_token, address=address, on=False))
    assert relay["receive"] is False

    await asyncio.to_thread(send, address, subject="buy now", body=f"{GTUBE}\r\n")
    await asyncio.to_thread(send, address, subject="large", body=("x" * 76 + "\r\n") * 14_000)  # over 1 MiB
    await asyncio.to_thread(send, address, subject="relayed")

    [(_, content)] = await at_sink(smtp_sink, destination)
    assert email.message_from_bytes(content, policy=email.policy.default)["Subject"] == "relayed"
    assert sorted(await in_mailbox(address, 2)) == ["buy now", "large"]
    await asyncio.sleep(1)  # all three went through the same queue
    assert len(smtp_sink.to(destination)) == 1
    assert sorted(await asyncio.to_thread(subjects_in, address, "INBOX")) == ["buy now", "large"]


async def test_spam_is_kept_not_forwarded(client, admin_token, rules_service, smtp_sink):
    address = await rules_account(client, admin_token)
    destination = outside()
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all", destinations=[destination]))

    await asyncio.to_thread(send, address, subject="buy now", body=f"{GTUBE}\r\n")
    await asyncio.to_thread(send, address, subject="ham")

    assert sorted(await in_mailbox(address, 2)) == ["buy now", "ham"]
    await at_sink(smtp_sink, destination)
    assert [email.message_from_bytes(c)["Subject"] for _, c in smtp_sink_to(smtp_sink, destination)] == ["ham"]


async def test_mail_too_large_to_check_is_kept_but_neither_forwarded_nor_answered(
        client, admin_token, rules_service, smtp_sink):
    """Ensure a message our spam checker skips (over its size limit) carries no verdict and goes no further
    than the mailbox — however the sender flagged it — while a checked one is forwarded and answered."""
    address = await rules_account(client, admin_token)
    destination, sender = outside(), outside("sender")
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all", destinations=[destination]))
    await changed_rules(client, SetAutoreply(actor_token=admin_token, address=address, text="Away."))
    too_large = "x" * 76 + "\r\n"
    lines = int(os.environ["SPAM_CHECK_MAX_BYTES"]) // len(too_large) + 100

    await asyncio.to_thread(send, address, subject="large", sender=sender, body=too_large * lines)
    await asyncio.to_thread(send, address, subject="checked", sender=sender)

    assert sorted(await in_mailbox(address, 2)) == ["checked", "large"]
    [(_, forwarded)] = await at_sink(smtp_sink, destination)
    [(_, answer)] = await at_sink(smtp_sink, sender)
    assert email.message_from_bytes(forwarded)["Subject"] == "checked" and b"Away." in answer
    [large] = [m for m in await asyncio.to_thread(stored, address) if m["Subject"] == "large"]
    assert large["X-Spam-Checker-Version"] is None  # skipped by the checker: no verdict


async def test_two_accounts_forwarding_to_each_other_get_each_message_once(client, admin_token, rules_service, smtp_sink):
    """Ensure A all -> B and B all -> A, and rules that send to each other, store each message once per
    mailbox and nothing circulates."""
    a, b = await rules_account(client, admin_token), await rules_account(client, admin_token)
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=a, condition="all", destinations=[b]))
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=b, condition="all", destinations=[a]))
    c, d = await rules_account(client, admin_token), await rules_account(client, admin_token)
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=c, condition="subject", match="ping", destinations=[d]))
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=d, condition="from", match="example.net",
                                        destinations=[c]))

    await asyncio.to_thread(send, a, subject="loop all")
    await asyncio.to_thread(send, c, subject="ping loop", sender="x@example.net")

    assert await in_mailbox(a, 1) == ["loop all"] and await in_mailbox(b, 1) == ["loop all"]
    assert await in_mailbox(c, 1) == ["ping loop"] and await in_mailbox(d, 1) == ["ping loop"]
    await asyncio.sleep(3)  # anything circulating would have come round again by now
    for mailbox in (a, b, c, d):
        assert len(await asyncio.to_thread(subjects_in, mailbox, "INBOX")) == 1


async def test_a_subaddressed_message_goes_to_the_destinations_as_written(client, admin_token, rules_service, smtp_sink):
    address = await rules_account(client, admin_token)
    destination = outside("dest")
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all", destinations=[destination]))
    local, domain = address.split("@")

    await asyncio.to_thread(send, f"{local}+news@{domain}", subject="subaddressed")

    await at_sink(smtp_sink, destination)
    assert not [r for _, rs, _ in smtp_sink.messages for r in rs if "+news" in r and r != f"{local}+news@{domain}"]


async def test_forwarding_goes_on_while_the_rules_service_is_down(client, admin_token, rules_service, smtp_sink):
    address = await rules_account(client, admin_token)
    destination = outside()
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all", destinations=[destination]))
    await rules_service.stop()
    try:
        await asyncio.to_thread(send, address, subject="while down")
        await at_sink(smtp_sink, destination)
    finally:
        await rules_service.start()


async def test_removed_forwards_and_deleted_accounts_leave_the_map(client, admin_token, rules_service, rules_env,
                                                                   smtp_sink):
    """Ensure a removed entry stops forwarding and its address leaves Postfix's map, and that
    AccountDeleted takes every forwarding address of the account with it."""
    address = await rules_account(client, admin_token)
    first, second, third = outside(), outside(), outside()
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all", destinations=[first, second]))
    rules = await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="subject",
                                                match="x", destinations=[third]))
    forward_map = ForwardMap(os.environ["POSTFIX_FORWARD_MAP"], os.environ["POSTFIX_CONFIG_DIR"], os.environ["FORWARD_DOMAIN"])
    before = await _map_of(forward_map, rules_env, address)
    assert sorted(before.values()) == sorted([sorted([first, second]), [third]])

    gone = next(f["id"] for f in rules["forwards"] if f["destinations"] == [first])
    await changed_rules(client, RemoveForwarding(actor_token=admin_token, address=address, entry_id=gone))

    async def pruned() -> bool:
        return [await forward_map.lookup(key) for key in before if key.endswith("-a2")] == [None]

    await eventually(pruned, what="the old forwarding address to leave the map")
    assert sorted((await _map_of(forward_map, rules_env, address)).values()) == sorted([[second], [third]])
    await asyncio.to_thread(send, address, subject="after removal")
    await at_sink(smtp_sink, second)
    assert smtp_sink.to(first) == []

    keys = list(await _map_of(forward_map, rules_env, address))
    reply = await client.request(ACCOUNT, DeleteAccount(actor_token=admin_token, address=address))
    assert reply.status == "accepted", reply

    async def emptied() -> bool:
        return all([await forward_map.lookup(key) is None for key in keys])

    await eventually(emptied, what="the account's forwarding addresses to leave the map")


async def _map_of(forward_map: ForwardMap, rules_env: dict, address: str) -> dict[str, list[str]]:
    """The account's forwarding addresses that are in Postfix's map now, with their destinations."""
    from pymongo import AsyncMongoClient

    mongo: AsyncMongoClient = AsyncMongoClient(rules_env["MONGODB_URL"])
    try:
        doc = await mongo[rules_env["MONGODB_DB"]]["rulesets"].find_one({"_id": address})
    finally:
        await mongo.close()
    found = {key: await forward_map.lookup(key) for key in (doc or {}).get("forward_keys", [])}
    return {key: value for key, value in found.items() if value is not None}


async def test_forwards_are_the_owners_and_their_admins_only(client, admin_token, issuer, rules_service):
    """Ensure a user cannot add or remove another account's forwards, nor an admin of another domain."""
    from shared.contracts.account import Login
    from tests.support import mint

    address, other = await rules_account(client, admin_token), await rules_account(client, admin_token)
    token = (await client.request(ACCOUNT, Login(login=address, password=STRONG))).result["token"]
    stranger_admin = mint(issuer, "elsewhere", role="admin", domains=("example.com",))
    await changed_rules(client, AddForwarding(actor_token=token, address=address, condition="all", destinations=[outside()]))

    for command in (AddForwarding(actor_token=token, address=other, condition="all", destinations=[outside()]),
                    RemoveForwarding(actor_token=token, address=other, entry_id="2-1"),
                    AddForwarding(actor_token=stranger_admin, address=address, condition="all", destinations=[outside()]),
                    RemoveForwarding(actor_token=stranger_admin, address=address, entry_id="2-1")):
        reply = await client.request(SERVICE, command)
        assert (reply.status, reply.code) == ("rejected", "forbidden"), command
    assert len((await client.request(SERVICE, GetRules(actor_token=token, address=address))).result["forwards"]) == 1


async def test_receive_off_is_refused_where_mail_would_be_lost_unless_confirmed(client, admin_token, rules_service):
    """Ensure receive off needs a forward of all mail or a confirmation, the last such forward cannot
    go while receive is off without one, and a refusal changes nothing."""
    address = await rules_account(client, admin_token)
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="from", match="boss",
                                        destinations=[outside()]))
    refused = await client.request(SERVICE, SetReceive(actor_token=admin_token, address=address, on=False))
    assert (refused.code, refused.errors[0].field) == ("validation_failed", "accept_loss")

    rules = await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all",
                                                destinations=[outside()]))
    rules = await changed_rules(client, SetReceive(actor_token=admin_token, address=address, on=False))
    last_all = next(f["id"] for f in rules["forwards"] if f["condition"] == "all")
    refused = await client.request(SERVICE, RemoveForwarding(actor_token=admin_token, address=address, entry_id=last_all))
    assert (refused.code, refused.errors[0].field) == ("validation_failed", "accept_loss")
    assert (await client.request(SERVICE, GetRules(actor_token=admin_token, address=address))).result["version"] == rules["version"]

    confirmed = await changed_rules(client, RemoveForwarding(actor_token=admin_token, address=address, entry_id=last_all,
                                                       accept_loss=True))
    assert [f["condition"] for f in confirmed["forwards"]] == ["from"] and confirmed["receive"] is False


async def test_a_bad_request_names_every_problem_and_changes_nothing(client, admin_token, rules_service):
    address = await rules_account(client, admin_token)
    destinations = [f"d{n:03d}@example.org" for n in range(300)] + ["-x@example.org", address]

    reply = await client.request(SERVICE, AddForwarding(actor_token=admin_token, address=address, condition="subject",
                                                        match="a\r\nb", destinations=destinations))

    assert reply.code == "validation_failed"
    assert sorted((e.field, e.code) for e in reply.errors) == [
        ("destinations", "invalid_address"), ("destinations", "own_address"), ("destinations", "too_many"),
        ("match", "control_character")]
    rules = (await client.request(SERVICE, GetRules(actor_token=admin_token, address=address))).result
    assert (rules["version"], rules["forwards"]) == (1, [])
