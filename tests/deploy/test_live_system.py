"""The system started by scripts/start.sh, running beside the tests, is left as it was.

The tests have a stack of their own (scripts/test.sh: the `test` stack). These two tests bracket the
whole run (tests/conftest.py orders them first and last): before it, an account is created through
the live system, a message is delivered through its Postfix and a rule is set; after it, the account
still logs in over IMAP, its message and rule are still there, and every live process (services and
stack) has the same pid. Without a live system both are skipped.
"""

import asyncio
import imaplib
import smtplib
import subprocess
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest

from shared.client import CommandClient
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount, DeleteAccount, Login
from shared.contracts.rules import SERVICE as RULES
from shared.contracts.rules import GetRules, SetSpamTag
from shared.launch import read_env_file
from tests.support import REPO, eventually

LIVE = REPO / ".run"
PASSWORD = f"Live-check-{uuid.uuid4().hex[:12]}!"


@dataclass
class LiveCheck:
    """What the first test left in the live system, for the last one to find again."""

    env: dict[str, str] = field(default_factory=dict)
    address: str = ""
    subject: str = ""
    pids: dict[str, str] = field(default_factory=dict)


CHECK = LiveCheck()


def live_pids() -> dict[str, str]:
    """Every live process the scripts recorded (services and stack), by name; none when it is not running."""
    pids = {path.stem: path.read_text().strip() for path in (LIVE / "pids").glob("*.pid")}
    return {name: pid for name, pid in pids.items() if pid and Path(f"/proc/{pid}").exists()}


def live_env() -> dict[str, str]:
    listing = subprocess.run([str(REPO / "scripts" / "stack.sh"), "env"], env={"MAILSS_STACK": "live", "PATH": "/usr/bin:/bin"},
                             check=True, capture_output=True, text=True).stdout
    pairs = (line.removeprefix("export ").partition("=") for line in listing.splitlines())
    return {name: value.strip("'") for name, _, value in pairs}


def require_live_system() -> None:
    if not any(name.startswith("svc-") for name in live_pids()):
        pytest.skip("the system from scripts/start.sh is not running")


async def live_client() -> CommandClient:
    broker = CHECK.env
    secret = Path(broker["BROKER_SECRETS_DIR"], "mailss-mailctl").read_text().strip()
    return await CommandClient.connect(f"amqp://mailss-mailctl:{secret}@127.0.0.1:{broker['RABBITMQ_AMQP_PORT']}/")


async def login(client: CommandClient, name: str, password: str) -> str:
    reply = await client.request(ACCOUNT, Login(login=name, password=password), timeout=30)
    assert reply.status == "accepted", reply
    return str(reply.result["token"])


async def admin_token(client: CommandClient) -> str:
    secrets = read_env_file(LIVE / "secrets" / "services.env")
    return await login(client, secrets["BOOTSTRAP_ADMIN_LOGIN"], secrets["BOOTSTRAP_ADMIN_PASSWORD"])


def deliver_through_postfix(address: str, subject: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "someone@example.org", address, subject
    message.set_content("Delivered to the live system while the tests ran beside it.")
    with smtplib.SMTP("127.0.0.1", int(CHECK.env["POSTFIX_SMTP_PORT"]), timeout=30) as smtp:
        smtp.send_message(message)


def inbox_subjects(address: str) -> list[str]:
    with imaplib.IMAP4("127.0.0.1", int(CHECK.env["DOVECOT_IMAP_PORT"]), timeout=10) as imap:
        imap.login(address, PASSWORD)
        imap.select("INBOX", readonly=True)
        _, found = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [part[1].decode().strip() for part in found if isinstance(part, tuple)]


async def rules_applied(client: CommandClient, token: str) -> dict:
    reply = await client.request(RULES, GetRules(actor_token=token, address=CHECK.address), timeout=30)
    assert reply.status == "accepted", reply
    return dict(reply.result)


async def the_account_is_whole(client: CommandClient) -> None:
    """It logs in over IMAP, its message is in INBOX, its rule is set and Dovecot runs it."""
    token = await login(client, CHECK.address, PASSWORD)

    async def delivered() -> bool:
        return f"Subject: {CHECK.subject}" in await asyncio.to_thread(inbox_subjects, CHECK.address)

    async def applied() -> bool:
        rules = await rules_applied(client, token)
        return rules["spam_tag"] is True and rules["mail_server"]["deployed_version"] == rules["version"]

    await eventually(delivered, timeout=60, what="the message in the live INBOX")
    await eventually(applied, timeout=60, what="the live rule applied")


@pytest.mark.before_all
async def test_the_live_system_is_used_before_the_tests():
    """Ensure an account, a delivered message and a rule exist in the live system before the suite runs."""
    require_live_system()
    CHECK.env, CHECK.pids = live_env(), live_pids()
    CHECK.address, CHECK.subject = f"live-check-{uuid.uuid4().hex[:8]}@example.jp", f"live check {uuid.uuid4().hex}"
    client = await live_client()
    try:
        admin = await admin_token(client)
        created = await client.request(ACCOUNT, CreateAccount(actor_token=admin, address=CHECK.address,
                                                              plan="business-standard", initial_password=PASSWORD))
        assert created.status == "accepted", created
        await eventually(lambda: asyncio.to_thread(lambda: _logs_in(CHECK.address)), timeout=60,
                         what="the live account to log in")
        await asyncio.to_thread(deliver_through_postfix, CHECK.address, CHECK.subject)
        user = await login(client, CHECK.address, PASSWORD)
        tagged = await client.request(RULES, SetSpamTag(actor_token=user, address=CHECK.address, on=True))
        assert tagged.status == "accepted", tagged
        await the_account_is_whole(client)
    finally:
        await client.close()


@pytest.mark.after_all
async def test_the_live_system_is_as_it_was_after_the_tests():
    """Ensure after the whole suite the live account, its message and rule are there and no live process changed."""
    require_live_system()
    if not CHECK.address:
        pytest.skip("the first check did not run (run the whole suite)")
    client = await live_client()
    try:
        await the_account_is_whole(client)
        assert live_pids() == CHECK.pids
        await client.request(ACCOUNT, DeleteAccount(actor_token=await admin_token(client), address=CHECK.address))
    finally:
        await client.close()


def _logs_in(address: str) -> bool:
    try:
        with imaplib.IMAP4("127.0.0.1", int(CHECK.env["DOVECOT_IMAP_PORT"]), timeout=10) as imap:
            imap.login(address, PASSWORD)
            return True
    except imaplib.IMAP4.error:
        return False
