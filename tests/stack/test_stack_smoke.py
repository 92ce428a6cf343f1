"""Smoke tests of the local stack started by scripts/stack.sh: Dovecot, FerretDB, RabbitMQ.

Run after `eval "$(scripts/stack.sh env)"`; unset variables default to the stack's values.
"""

import asyncio
import imaplib
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aio_pika
import argon2
import pymongo
import pytest

from services.account.adapters.dovecot_passwd import DovecotPasswdFiles
from services.account.adapters.mail_homes import MailHomes
from shared.broker_access import ADMIN, Broker
from tests.support import ServicesImap
from tests.support import imap_login_works as imap_login

REPO = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("MAILSS_RUN", REPO / ".run" / "test"))

AMQP_URL = Broker.from_env().url(ADMIN)
MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/?retryWrites=false")
PASSWD_DIR = Path(os.environ.get("DOVECOT_PASSWD_DIR", RUN / "dovecot" / "passwd.d"))
MAIL_DIR = Path(os.environ.get("DOVECOT_MAIL_DIR", RUN / "dovecot" / "mail"))
IMAP_HOST = os.environ.get("DOVECOT_IMAP_HOST", "127.0.0.1")
IMAP_PORT = int(os.environ.get("DOVECOT_IMAP_PORT", "10143"))
MASTER_USER = os.environ.get("DOVECOT_MASTER_USER", "mailsvc")
MASTER_PASSWORD_FILE = Path(
    os.environ.get("DOVECOT_MASTER_PASSWORD_FILE", RUN / "secrets" / "dovecot-master-password"))

# Dovecot stats an account file at most once per second and answers a failed
# login after auth_failure_delay (2 s): a change is visible within a few seconds.
CHANGE_VISIBLE_WITHIN_S = 6.0

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------ Dovecot helpers

def write_passwd_file(address: str, password: str) -> Path:
    """Grant the account in its bucket with the account service's own writer."""
    passwd_files = DovecotPasswdFiles(PASSWD_DIR, MailHomes(MAIL_DIR))
    asyncio.run(passwd_files.grant(address.lower(), argon2.PasswordHasher().hash(password), None, ""))
    return passwd_files.path_of(address.lower())


def remove_passwd_entry(address: str) -> None:
    asyncio.run(DovecotPasswdFiles(PASSWD_DIR, MailHomes(MAIL_DIR)).revoke(address.lower()))


def eventually(check: Callable[[], bool], what: str, within: float = CHANGE_VISIBLE_WITHIN_S) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {within}s: {what}")


@pytest.fixture
def address() -> Iterator[str]:
    address = f"u{secrets.token_hex(5)}@example.jp"
    yield address
    remove_passwd_entry(address)


# ------------------------------------------------------------------ Dovecot

def test_login_with_bucketed_passwd_file(address: str) -> None:
    """Ensure an account line in its passwd-file bucket with an argon2-cffi hash allows IMAP login and refuses a wrong password."""
    write_passwd_file(address, "first-Password-1")

    with imaplib.IMAP4(IMAP_HOST, IMAP_PORT, timeout=30) as imap:
        imap.login(address, "first-Password-1")
        _, listing = imap.list()
        imap.logout()
    folders = {line.decode().rsplit(" ", 1)[-1].strip('"') for line in listing if line}
    assert {"INBOX", "Junk", "Archive", "Trash"} <= folders
    assert not imap_login(address, "wrong-Password-1")


def test_password_change_and_removal_apply_at_next_login(address: str) -> None:
    """Ensure a rewritten account line replaces the old password and a removed one refuses login."""
    write_passwd_file(address, "old-Password-1")
    assert imap_login(address, "old-Password-1")

    write_passwd_file(address, "new-Password-2")
    eventually(lambda: imap_login(address, "new-Password-2"), "the new password works")
    assert not imap_login(address, "old-Password-1")

    remove_passwd_entry(address)
    eventually(lambda: not imap_login(address, "new-Password-2"), "login fails after removal")
    assert not imap_login(address, "new-Password-2")


def test_master_user_logs_in_as_account(address: str) -> None:
    """Ensure the service master user logs in as an existing account with `user*mailsvc`, not as an unknown one."""
    write_passwd_file(address, "user-Password-1")
    master_password = MASTER_PASSWORD_FILE.read_text().strip()

    with ServicesImap(os.environ["DOVECOT_IMAP_SOCKET"], timeout=30) as imap:
        imap.login(f"{address}*{MASTER_USER}", master_password)
        status, _ = imap.select("INBOX")
        imap.logout()
    assert status == "OK"
    with ServicesImap(os.environ["DOVECOT_IMAP_SOCKET"], timeout=30) as imap, pytest.raises(imaplib.IMAP4.error):
        imap.login(f"nobody-{secrets.token_hex(4)}@example.jp*{MASTER_USER}", master_password)


def test_the_master_user_logs_in_only_through_the_services_socket(address: str) -> None:
    """Over TCP (where every local user may connect) the right master password is refused, as a wrong one."""
    write_passwd_file(address, "user-Password-1")
    assert not imap_login(f"{address}*{MASTER_USER}", MASTER_PASSWORD_FILE.read_text().strip())
    assert imap_login(address, "user-Password-1")


# ------------------------------------------------------------------ FerretDB

def test_ferretdb_ping_and_round_trip() -> None:
    """Ensure the MongoDB endpoint answers a ping with retryWrites=false and returns what was written."""
    client: pymongo.MongoClient = pymongo.MongoClient(MONGODB_URL, serverSelectionTimeoutMS=10_000)
    database = client[f"stack_smoke_{uuid.uuid4().hex[:8]}"]
    try:
        assert client.admin.command("ping")["ok"] == 1
        assert client.options.retry_writes is False
        document_id = uuid.uuid4().hex
        database.things.insert_one({"_id": document_id, "address": "a@example.jp", "n": 1})
        assert database.things.find_one({"_id": document_id}) == {
            "_id": document_id, "address": "a@example.jp", "n": 1}
    finally:
        client.drop_database(database.name)
        client.close()


# ------------------------------------------------------------------ RabbitMQ

def test_rabbitmq_quorum_queue_and_consistent_hash_exchange() -> None:
    """Ensure RabbitMQ declares a durable quorum queue with a delivery limit and routes to it through a consistent-hash exchange."""
    asyncio.run(_quorum_queue_behind_consistent_hash())


async def _quorum_queue_behind_consistent_hash() -> None:
    suffix = uuid.uuid4().hex[:8]
    connection = await aio_pika.connect(AMQP_URL, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            f"stack-smoke-{suffix}", durable=True,
            arguments={"x-queue-type": "quorum", "x-delivery-limit": 5})
        exchange = await channel.declare_exchange(
            f"stack-smoke-shards-{suffix}", "x-consistent-hash", durable=True)
        try:
            await queue.bind(exchange, routing_key="1")  # the weight of this shard
            await exchange.publish(
                aio_pika.Message(b"hello", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="someone@example.jp", mandatory=True)

            first = await _get(queue)
            await first.nack(requeue=True)
            again = await _get(queue)
            await again.ack()
            # Only quorum queues count deliveries (that is what x-delivery-limit acts on).
            assert again.body == b"hello"
            assert again.headers.get("x-delivery-count") == 1
        finally:
            await queue.delete(if_unused=False, if_empty=False)
            await exchange.delete()


async def _get(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    deadline = time.monotonic() + 10
    while (message := await queue.get(fail=False, no_ack=False)) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"no message in {queue.name} within 10s")
    return message
