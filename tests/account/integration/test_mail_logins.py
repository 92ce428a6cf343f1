"""The mail server follows the database, even when a passwd file cannot be written for a while or
was broken by hand."""

import asyncio
import fcntl
import os
import subprocess
import uuid
from pathlib import Path

from services.account.adapters.dovecot_passwd import bucket_of
from shared.client import CommandClient
from shared.contracts.account import SERVICE, CreateAccount, DeleteAccount
from tests.support import eventually, imap_login, new_address

STRONG = "Strong-Passw0rd!"


async def _create(client: CommandClient, token: str, address: str) -> None:
    reply = await client.request(SERVICE, CreateAccount(actor_token=token, address=address, plan="kwc",
                                                        initial_password=STRONG))
    assert reply.status == "accepted", reply


def _bucket(address: str) -> Path:
    return Path(os.environ["DOVECOT_PASSWD_DIR"]) / bucket_of(address)


def _rewrite(path: Path, change) -> None:
    """Edit a bucket by hand, under the same lock the service takes."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lines = path.read_text().splitlines() if path.exists() else []
        path.write_text("".join(f"{line}\n" for line in change(lines)))


async def _cannot_log_in(address: str) -> bool:
    return not await imap_login(address, STRONG)


async def test_a_delete_the_file_cannot_take_yet_is_accepted_and_followed_once_it_can(client, admin_token, events):
    """Ensure a DeleteAccount whose passwd write fails for good (an immutable bucket) is accepted, IMAP works
    while the file cannot change, and stops within seconds once it can; AccountDeleted is published only
    then, once."""
    address = new_address()
    await _create(client, admin_token, address)
    await eventually(lambda: imap_login(address, STRONG), what="the new account's login")  # its line follows the reply
    path = _bucket(address)
    await asyncio.to_thread(subprocess.run, ["chattr", "+i", str(path)], check=True)
    try:
        reply = await client.request(SERVICE, DeleteAccount(actor_token=admin_token, address=address))
        assert reply.status == "accepted", reply
        await asyncio.sleep(2)
        assert await imap_login(address, STRONG), "the file changed although it is immutable"
        assert not events.of_type("AccountDeleted", address=address), "published while the login still works"
    finally:
        await asyncio.to_thread(subprocess.run, ["chattr", "-i", str(path)], check=True)
    await eventually(lambda: _cannot_log_in(address), timeout=10, what="the deleted account's IMAP to stop")
    await eventually(lambda: _published(events, address), timeout=10, what="AccountDeleted")
    await asyncio.sleep(1)
    assert len(events.of_type("AccountDeleted", address=address)) == 1


async def _published(events, address: str) -> bool:
    return bool(events.of_type("AccountDeleted", address=address))


async def test_a_hand_broken_bucket_is_brought_back_in_line(client, admin_token):
    """Ensure the reconciler restores a live account's missing line and removes a deleted account's line,
    and leaves alone a line of an address the database has never known."""
    live, gone = new_address(), new_address()
    await _create(client, admin_token, live)
    await _create(client, admin_token, gone)
    assert (await client.request(SERVICE, DeleteAccount(actor_token=admin_token, address=gone))).status == "accepted"
    await eventually(lambda: _cannot_log_in(gone), what="the deleted account's IMAP to stop")
    [live_line] = [line for line in _bucket(live).read_text().splitlines() if line.startswith(f"{live}:")]
    credentials = live_line.partition(":")[2]
    ghost = f"ghost-{uuid.uuid4().hex[:8]}@example.net"

    _rewrite(_bucket(live), lambda lines: [line for line in lines if not line.startswith(f"{live}:")])
    _rewrite(_bucket(gone), lambda lines: [*lines, f"{gone}:{credentials}"])
    _rewrite(_bucket(ghost), lambda lines: [*lines, f"{ghost}:{credentials}"])

    await eventually(lambda: imap_login(live, STRONG), timeout=15, what="the live account's line restored")
    await eventually(lambda: _cannot_log_in(gone), timeout=15, what="the deleted account's line removed")
    assert f"{ghost}:" in _bucket(ghost).read_text()
    _rewrite(_bucket(ghost), lambda lines: [line for line in lines if not line.startswith(f"{ghost}:")])


async def test_a_tombstone_is_forgotten_after_its_retention_and_a_new_account_is_not(client, admin_token, service_env):
    """Ensure a deleted account's tombstone is removed once past its retention (8.6 s in tests), while an
    address deleted and created again keeps its document."""
    import pymongo

    gone, back = new_address(), new_address()
    for address in (gone, back):
        await _create(client, admin_token, address)
        assert (await client.request(SERVICE, DeleteAccount(actor_token=admin_token, address=address))).status == "accepted"
    await _create(client, admin_token, back)
    accounts = pymongo.MongoClient(service_env["MONGODB_URL"])[service_env["MONGODB_DB"]]["accounts"]
    assert accounts.find_one({"_id": gone})["deleted"] is True

    async def forgotten() -> bool:
        return accounts.find_one({"_id": gone}) is None

    await eventually(forgotten, timeout=30, what="the tombstone forgotten")
    assert accounts.find_one({"_id": back})["deleted"] is False
    assert await imap_login(back, STRONG) and not await imap_login(gone, STRONG)
