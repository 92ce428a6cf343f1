"""Mail sent into the stack's Postfix as the outside world would: SpamAssassin flags it, the account's
rules tag and file it, forged flags never count, and unknown addresses are refused."""

import asyncio
import os
import smtplib
from email.message import EmailMessage

import pytest

from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount
from shared.contracts.rules import SERVICE, GetRules, SetSpamSort, SetSpamTag
from tests.rules.mail_world import in_mailbox
from tests.support import eventually, new_address, stack, subjects_in

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
STRONG = "Strong-Passw0rd!"


def send_smtp(address: str, *, subject: str, body: str = "hello\r\n", headers: dict[str, str] | None = None) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "stranger@example.net", address, subject
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    with smtplib.SMTP("127.0.0.1", int(os.environ.get("POSTFIX_SMTP_PORT", "10587")), timeout=30) as smtp:
        smtp.send_message(message)


async def _tagging_and_sorting_account(client, admin_token) -> str:
    address = new_address()
    reply = await client.request(ACCOUNT, CreateAccount(actor_token=admin_token, address=address, plan="kwc",
                                                        initial_password=STRONG))
    assert reply.status == "accepted", reply

    async def known() -> bool:
        return (await client.request(SERVICE, GetRules(actor_token=admin_token, address=address))).status == "accepted"

    await eventually(known, what="the rules service to know the account")
    for command in (SetSpamTag(actor_token=admin_token, address=address, on=True),
                    SetSpamSort(actor_token=admin_token, address=address, on=True)):
        assert (await client.request(SERVICE, command)).status == "accepted"

    async def applied() -> bool:
        reply = await client.request(SERVICE, GetRules(actor_token=admin_token, address=address))
        return reply.result["mail_server"]["state"] == "applied" and reply.result["version"] == 3

    await eventually(applied, what="the rules on the mail server")
    return address


async def test_spamassassin_flags_gtube_and_the_rules_tag_and_file_it(client, admin_token, rules_service):
    """Ensure GTUBE sent into Postfix is flagged by SpamAssassin and lands in Junk tagged, while a
    message whose sender forged X-Spam-Flag arrives in INBOX untouched."""
    address = await _tagging_and_sorting_account(client, admin_token)

    await asyncio.to_thread(send_smtp, address, subject="buy now", body=f"{GTUBE}\r\n")
    await asyncio.to_thread(send_smtp, address, subject="honest mail", headers={"X-Spam-Flag": "YES"})

    assert await in_mailbox(address, 1, "Junk") == ["[SPAM] buy now"]
    assert await in_mailbox(address, 1, "INBOX") == ["honest mail"]


async def test_an_unknown_address_of_a_hosted_domain_is_refused(account_service):
    """Ensure Postfix asks the account service and refuses a recipient that is no account (no backscatter)."""
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await asyncio.to_thread(send_smtp, new_address(), subject="to nobody")


async def test_with_the_spam_checker_down_mail_is_deferred_never_let_through_unchecked(client, admin_token,
                                                                                        rules_service):
    """Ensure Postfix tells senders to try again (4xx) while the milter is down, so nothing goes on unchecked
    (forwarded, answered); once it is back the retried message is delivered, a forged flag not counting."""
    address = await _tagging_and_sorting_account(client, admin_token)
    await asyncio.to_thread(stack, "stop", "spamassassin")
    try:
        with pytest.raises(smtplib.SMTPException) as refused:
            await asyncio.to_thread(send_smtp, address, subject="forged", headers={"X-Spam-Flag": "YES"})
        assert _codes(refused.value) and all(400 <= code < 500 for code in _codes(refused.value)), refused.value
    finally:
        await asyncio.to_thread(stack, "start", "spamassassin")
    await asyncio.to_thread(send_smtp, address, subject="forged", headers={"X-Spam-Flag": "YES"})
    assert await in_mailbox(address, 1, "INBOX") == ["forged"]
    assert await asyncio.to_thread(subjects_in, address, "Junk") == []


def _codes(error: smtplib.SMTPException) -> list[int]:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return [code for code, _ in error.recipients.values()]
    return [error.smtp_code] if isinstance(error, smtplib.SMTPResponseException) else []
