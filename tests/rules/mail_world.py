"""The outside world of the rules' mail tests: mail sent into the stack's Postfix as a stranger would,
accounts whose rules are on the mail server, what arrived at the SMTP sink and in a mailbox."""

import asyncio
import email
import email.policy
import email.utils
import os
import smtplib
import uuid
from email.message import EmailMessage

from shared.client import CommandClient
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount
from shared.contracts.rules import SERVICE, GetRules, RulesCommand
from tests.support import eventually, fetched, holds, new_address, subjects_in

STRONG = "Strong-Passw0rd!"
BASIC = "Basic-Passw0rd"
"""a password sv-basic takes (letters, digits, - _ . only)"""
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def outside(name: str = "d", domain: str = "example.org") -> str:
    """A new address of the outside world (the test stack's DNS gives spf-pass.test, spf-fail.test and
    spf-softfail.test SPF records, deploy/spf/test-dns.conf; other domains have none)."""
    return f"{name}-{uuid.uuid4().hex[:8]}@{domain}"


def send(recipient: str, *, subject: str = "hello", sender: str = "", from_header: str = "", body: str = "hi\r\n",
         envelope_from: str | None = None, headers: dict[str, str] | None = None) -> None:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = from_header or sender or "stranger@example.net"
    message["To"], message["Subject"] = recipient, subject
    message["Message-ID"] = email.utils.make_msgid()
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    with smtplib.SMTP("127.0.0.1", int(os.environ.get("POSTFIX_SMTP_PORT", "10587")), timeout=30) as smtp:
        smtp.send_message(message, from_addr=envelope_from if envelope_from is not None else (sender or "stranger@example.net"),
                          to_addrs=[recipient])


def stored(address: str, folder: str = "INBOX") -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(raw, policy=email.policy.default) for raw in fetched(address, folder)]


async def rules_account(client: CommandClient, token: str, plan: str = "kwc") -> str:
    address = new_address()
    password = BASIC if plan == "sv-basic" else STRONG
    reply = await client.request(ACCOUNT, CreateAccount(actor_token=token, address=address, plan=plan, initial_password=password))
    assert reply.status == "accepted", reply

    async def adopted() -> bool:
        return (await client.request(SERVICE, GetRules(actor_token=token, address=address))).status == "accepted"

    await eventually(adopted, what="the rules service to know the new account")
    return address


async def changed_rules(client: CommandClient, command: RulesCommand) -> dict:
    reply = await client.request(SERVICE, command)
    assert reply.status == "accepted", reply
    token, address = command.actor_token, command.address

    async def applied() -> bool:
        rules = (await client.request(SERVICE, GetRules(actor_token=token, address=address))).result
        return rules["mail_server"]["state"] == "applied" and rules["version"] >= reply.result["version"]

    await eventually(applied, what="the rules on the mail server")
    return (await client.request(SERVICE, GetRules(actor_token=token, address=address))).result


async def at_sink(sink, recipient: str, count: int = 1) -> list[tuple[str, bytes]]:
    await eventually(lambda: holds(len(sink.to(recipient)) >= count), what=f"{count} message(s) for {recipient} at the sink")
    return [(sender, content) for sender, recipients, content in sink.messages if recipient in recipients]


async def in_mailbox(address: str, count: int, folder: str = "INBOX") -> list[str]:
    found: list[str] = []

    async def there() -> bool:
        found[:] = await asyncio.to_thread(subjects_in, address, folder)
        return len(found) >= count

    await eventually(there, what=f"{count} message(s) in {address}'s {folder}")
    return found
