"""The hour's limit on what an account sends out, through the real stack: Dovecot's Sieve asks the
outbound meter before each forward and autoreply; over the limit the message stays in the mailbox,
GetRules shows what was held, and Dovecot's log says so."""

import asyncio
import grp
import os
import pwd
import time
from pathlib import Path

from services.rules.adapters.outbound_meter import ask, meter_path
from shared.contracts.rules import AddForwarding, SetAutoreply, SetReceive
from tests.rules.mail_world import at_sink, changed_rules, in_mailbox, outside, rules_account, send
from tests.support import RUN


def spend(address: str, messages: int, per_hour: int) -> None:
    """As if the account had sent `messages` out a moment ago (the mail user's meter, as Sieve leaves it)."""
    folder = Path(os.environ["OUTBOUND_METER_DIR"])
    ask(folder, address, messages, per_hour, time.time())
    os.chown(meter_path(folder, address), pwd.getpwnam("vmail").pw_uid, grp.getgrnam("mailss-mail").gr_gid)


async def test_a_forward_over_the_hours_limit_is_kept_in_the_mailbox_and_shown(client, admin_token, rules_service,
                                                                                smtp_sink):
    """Ensure a forward goes out while its destinations fit in the hour, the next is held whole (every
    destination or none) and kept even with receive off, and the user and ops are told."""
    address = await rules_account(client, admin_token)
    destinations = [outside() for _ in range(3)]
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="all",
                                              destinations=destinations))
    rules = await changed_rules(client, SetReceive(actor_token=admin_token, address=address, on=False))
    per_hour = rules["outbound"]["per_hour"]
    assert rules["outbound"] == {"per_hour": per_hour, "sent_last_hour": 0, "held_last_hour": 0, "last_held_at": None}
    await asyncio.to_thread(spend, address, per_hour - 4, per_hour)
    log = RUN / "logs" / "dovecot.log"
    log_before = log.stat().st_size

    await asyncio.to_thread(send, address, subject="fits")
    for destination in destinations:
        await at_sink(smtp_sink, destination)
    await asyncio.to_thread(send, address, subject="over the limit")

    assert await in_mailbox(address, 1) == ["over the limit"]
    await asyncio.sleep(1)  # anything sent went through the same queue
    assert [len(smtp_sink.to(d)) for d in destinations] == [1, 1, 1]
    shown = (await changed_rules(client, SetReceive(actor_token=admin_token, address=address, on=False)))["outbound"]
    assert (shown["sent_last_hour"], shown["held_last_hour"]) == (per_hour - 1, 3) and shown["last_held_at"]
    with log.open("rb") as lines:
        lines.seek(log_before)
        assert f"mailss-outbound: {address} is over its {per_hour} messages an hour: 3 held".encode() in lines.read()


async def test_an_autoreply_over_the_hours_limit_is_not_sent_and_a_sender_counts_once_a_day(
        client, admin_token, rules_service, smtp_sink):
    """Ensure the last reply that fits goes out, the next sender's is held, and a sender already answered
    today costs nothing more (vacation would not answer again)."""
    address = await rules_account(client, admin_token)
    rules = await changed_rules(client, SetAutoreply(actor_token=admin_token, address=address, text="Away."))
    per_hour = rules["outbound"]["per_hour"]
    await asyncio.to_thread(spend, address, per_hour - 1, per_hour)
    alice, bob = outside("alice"), outside("bob")

    await asyncio.to_thread(send, address, subject="one", sender=alice)
    [(_, answer)] = await at_sink(smtp_sink, alice)
    await asyncio.to_thread(send, address, subject="two", sender=bob)
    await asyncio.to_thread(send, address, subject="three", sender=alice)

    assert b"Away." in answer
    assert sorted(await in_mailbox(address, 3)) == ["one", "three", "two"]
    await asyncio.sleep(1)
    assert smtp_sink.to(bob) == [] and len(smtp_sink.to(alice)) == 1
    shown = (await changed_rules(client, SetAutoreply(actor_token=admin_token, address=address, text="Away.")))["outbound"]
    assert (shown["sent_last_hour"], shown["held_last_hour"]) == (per_hour, 1)


async def test_with_receive_off_a_message_whose_rule_forward_was_held_stays(client, admin_token, rules_service,
                                                                           smtp_sink):
    """Receive off without a forward of all mail stores nothing (the user confirmed the loss), except a
    message a rule would have forwarded but the hour's limit held: that one stays."""
    address = await rules_account(client, admin_token)
    await changed_rules(client, AddForwarding(actor_token=admin_token, address=address, condition="subject",
                                              match="invoice", destinations=[outside()]))
    rules = await changed_rules(client, SetReceive(actor_token=admin_token, address=address, on=False, accept_loss=True))
    await asyncio.to_thread(spend, address, rules["outbound"]["per_hour"], rules["outbound"]["per_hour"])

    await asyncio.to_thread(send, address, subject="chatter")
    await asyncio.to_thread(send, address, subject="invoice 42")

    assert await in_mailbox(address, 1) == ["invoice 42"]
    await asyncio.sleep(1)
    assert await in_mailbox(address, 1) == ["invoice 42"]  # the other was dropped, as confirmed
