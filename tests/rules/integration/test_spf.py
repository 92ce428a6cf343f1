"""Inbound SPF through the real stack: the SPF milter (its own network namespace and DNS in the test
stack, deploy/spf/test-dns.conf) records each message's result, a sender's own results never count,
and the sv-basic autoreply quotes a sender's text only where SPF passed."""

import asyncio
import email
import email.policy
import smtplib

import pytest

from shared.contracts.rules import SetAutoreply
from tests.rules.mail_world import GTUBE, at_sink, changed_rules, in_mailbox, outside, rules_account, send, stored
from tests.support import stack

FORGED = {"Authentication-Results": "mail.mailss.localhost; spf=pass smtp.mailfrom=spf-pass.test",
          "Received-SPF": "Pass (mailfrom) identity=mailfrom"}
"""what a forger writes: dropped before the milter adds the real result"""


async def test_each_message_carries_its_own_spf_result_and_no_forged_one(client, admin_token, rules_service):
    """Ensure the result is the envelope sender's, or, for a domain without a record, the HELO name's
    (the client's, localhost, which has a passing one in the test DNS)."""
    address = await rules_account(client, admin_token)
    senders = {result: outside(result, domain) for result, domain in
               (("pass", "spf-pass.test"), ("fail", "spf-fail.test"), ("softfail", "spf-softfail.test"),
                ("none", "example.org"))}

    for result, sender in senders.items():
        await asyncio.to_thread(send, address, subject=result, sender=sender, headers=FORGED)

    await in_mailbox(address, len(senders))
    for message in await asyncio.to_thread(stored, address):
        (verdict,) = message.get_all("Authentication-Results")
        result, domain = message["Subject"], senders[message["Subject"]].partition("@")[2]
        if result == "none":  # the domain has no record: the HELO name's passes
            assert verdict.startswith("mail.mailss.localhost; spf=pass ") and "smtp.helo=localhost" in verdict, verdict
            assert "smtp.mailfrom" not in verdict
        else:
            assert verdict.startswith(f"mail.mailss.localhost; spf={result} ") and f"smtp.mailfrom={domain}" in verdict
        assert message["Received-SPF"] is None


async def test_the_sv_basic_autoreply_quotes_only_senders_that_passed_spf(client, admin_token, rules_service,
                                                                         smtp_sink):
    """Ensure the original is quoted to a sender whose domain allows the sending host, and not to a
    forged one, even one that wrote a passing result of its own, nor to one whose domain has no record
    (where only the HELO name passed). The reply itself still goes."""
    address = await rules_account(client, admin_token, plan="sv-basic")
    await changed_rules(client, SetAutoreply(actor_token=admin_token, address=address, text="Away; you wrote:",
                                             include_original=True))
    honest, forged, plain = outside("honest", "spf-pass.test"), outside("forged", "spf-fail.test"), outside("plain")

    await asyncio.to_thread(send, address, sender=honest, body="the original words, 元の文\r\n")
    await asyncio.to_thread(send, address, sender=forged, body="click https://evil.example/\r\n", headers=FORGED)
    await asyncio.to_thread(send, address, sender=plain, body="no SPF record here\r\n")

    replies = {sender: reply_text((await at_sink(smtp_sink, sender))[0][1]) for sender in (honest, forged, plain)}
    assert replies[honest].startswith("Away; you wrote:") and "the original words, 元の文" in replies[honest]
    assert replies[forged].startswith("Away; you wrote:") and "evil" not in replies[forged]
    assert "no SPF record" not in replies[plain]


async def test_spam_from_a_passing_sender_gets_no_reply(client, admin_token, rules_service, smtp_sink):
    address = await rules_account(client, admin_token, plan="sv-basic")
    await changed_rules(client, SetAutoreply(actor_token=admin_token, address=address, text="Away.", include_original=True))
    spammer, later = outside("spammer", "spf-pass.test"), outside("later", "spf-pass.test")

    await asyncio.to_thread(send, address, subject="buy", sender=spammer, body=f"{GTUBE}\r\n")
    await asyncio.to_thread(send, address, subject="hello", sender=later)

    await at_sink(smtp_sink, later)
    await asyncio.sleep(1)  # both went through the same queue
    assert smtp_sink.to(spammer) == []


async def test_with_the_spf_milter_down_senders_are_told_to_retry(client, admin_token, rules_service):
    """Ensure no message is accepted without its SPF result while the milter is away (4xx: the sender
    retries), so no forged result could stand in for it; back, the retried message carries its own."""
    address = await rules_account(client, admin_token)
    sender = outside("retry", "spf-fail.test")
    await asyncio.to_thread(stack, "stop", "spf")
    try:
        with pytest.raises(smtplib.SMTPResponseException) as deferred:
            await asyncio.to_thread(send, address, subject="later", sender=sender, headers=FORGED)
        assert 400 <= deferred.value.smtp_code < 500, deferred.value
    finally:
        await asyncio.to_thread(stack, "start", "spf")
    await asyncio.to_thread(send, address, subject="later", sender=sender, headers=FORGED)

    assert await in_mailbox(address, 1) == ["later"]
    [message] = await asyncio.to_thread(stored, address)
    assert message.get_all("Authentication-Results")[0].startswith("mail.mailss.localhost; spf=fail ")


def reply_text(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return message.get_body(("plain",)).get_content()
