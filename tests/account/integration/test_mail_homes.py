"""Each account has a home of its own on the mail server: an address created again starts empty, a
deleted account's home goes once its mail login is gone, and homes left behind are swept."""

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from services.account.adapters.dovecot_passwd import bucket_of
from shared.client import CommandClient
from shared.contracts.account import SERVICE, CreateAccount, DeleteAccount
from tests.support import as_owner, deliver_over_lmtp, eventually, holds, inbox_count, new_address

STRONG = "Strong-Passw0rd!"
pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted connection")


async def _create(client: CommandClient, token: str, address: str) -> None:
    reply = await client.request(SERVICE, CreateAccount(actor_token=token, address=address, plan="kwc",
                                                        initial_password=STRONG))
    assert reply.status == "accepted", reply


async def _delete(client: CommandClient, token: str, address: str) -> None:
    assert (await client.request(SERVICE, DeleteAccount(actor_token=token, address=address))).status == "accepted"


def _home_of(address: str) -> Path:
    """The home field of the account's passwd line, as Dovecot reads it."""
    bucket = Path(os.environ["DOVECOT_PASSWD_DIR"]) / bucket_of(address)
    [line] = [line for line in bucket.read_text().splitlines() if line.startswith(f"{address}:")]
    return Path(line.split(":")[5])


def _store_a_folder_and_a_script(address: str) -> None:
    """As our services do it, through Dovecot (the master user): a folder with a message, an active script."""
    from services.rules.adapters.managesieve import UnixClient

    master, password = os.environ["DOVECOT_MASTER_USER"], Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
    with as_owner(address) as imap:
        imap.create("Projects")
        imap.append("Projects", "($Work)", None, b"Subject: kept\r\n\r\nbody\r\n")
    sieve = UnixClient(os.environ["DOVECOT_SIEVE_SOCKET"])
    assert sieve.connect(master, password, authz_id=address, authmech="PLAIN")
    assert sieve.putscript("rules", 'redirect "thief@example.net";\n') and sieve.setactive("rules")
    sieve.logout()


async def test_a_recreated_address_starts_empty_and_the_old_home_is_removed(client, admin_token, events):
    """Ensure a deleted account's mail, folders and Sieve scripts, all written by Dovecot as the mail user,
    are removed by the account service (its own user, not the mail user) after AccountDeleted is published,
    and the address created again has a new, empty home."""
    address = new_address()
    await _create(client, admin_token, address)
    assert await asyncio.to_thread(deliver_over_lmtp, address)
    await asyncio.to_thread(_store_a_folder_and_a_script, address)  # all Dovecot's and Pigeonhole's own files
    old_home = _home_of(address)
    assert (old_home / "Maildir" / ".Projects").is_dir() and (old_home / "sieve" / "rules.sieve").is_file()
    assert old_home.parent.name == address.partition("@")[2]

    await _delete(client, admin_token, address)
    await eventually(lambda: holds(not old_home.exists()), timeout=15, what="the old home removed")
    assert len(events.of_type("AccountDeleted", address=address)) == 1
    await _create(client, admin_token, address)

    assert _home_of(address) != old_home
    assert await asyncio.to_thread(inbox_count, address, STRONG) == 0
    assert list((_home_of(address) / "sieve").iterdir()) == []


async def test_homes_left_behind_are_swept_after_the_grace_period(client, admin_token):
    """Ensure a home of a known address that is not its account's (e.g. written by a session still open
    after the delete) is removed once untouched for the grace period (60 s in tests), while a young one
    and one of an address the database never knew are left alone."""
    address = new_address()
    await _create(client, admin_token, address)
    assert await asyncio.to_thread(deliver_over_lmtp, address)
    live = _home_of(address)
    stale, young = live.with_name(address.partition("@")[0] + "+0badc0de"), live.with_name(live.name + "0")
    stranger = live.with_name(new_address().partition("@")[0] + "+0badc0de")
    for home in (stale, young, stranger):
        for folder in (home, home / "Maildir", home / "Maildir" / "cur"):  # as Dovecot makes them: the group's, setgid
            folder.mkdir()
            folder.chmod(0o2770)
            shutil.chown(folder, "vmail")
    an_hour_ago = time.time() - 3600
    for home in (stale, stranger):
        os.utime(home, (an_hour_ago, an_hour_ago))

    await eventually(lambda: holds(not stale.exists()), timeout=15, what="the stale home swept")
    assert live.is_dir() and young.is_dir() and stranger.is_dir()
    assert await asyncio.to_thread(inbox_count, address, STRONG) == 1
    for home in (young, stranger):
        for folder in sorted(home.rglob("*"), reverse=True):
            folder.rmdir()
        home.rmdir()

