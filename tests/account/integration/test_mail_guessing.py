"""IMAP has a guessing limit (Dovecot asks the account service before each login), which spares
our own master-user logins and a mail client still trying the previous password, and which
never takes IMAP down with the account service."""

import asyncio
import imaplib
import os
import socket
from pathlib import Path

from shared.client import CommandClient
from shared.contracts.account import SERVICE, ChangePassword, CreateAccount, Login
from tests.support import ServicesImap, eventually, new_address

FIRST, SECOND, WRONG = "Strong-Passw0rd!", "Other-Passw0rd!2", "Guess-Passw0rd!x"
MAIL_LOCKOUT = 10  # MAIL_LOCKOUT_MAX_FAILURES (default)
SOURCE_LOCKOUT = 20  # MAIL_SOURCE_MAX_FAILURES in the tests' environment


class _IMAP(imaplib.IMAP4):
    """A client on a loopback address of its own: to Dovecot, another source (nobody's IMAP ID is
    believed about its address; see test_exposure's forged x-originating-ip)."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__("127.0.0.1", int(os.environ.get("DOVECOT_IMAP_PORT", "10143")), timeout=30)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))


def _imap_login(user: str, password: str, source: str | None = None) -> bool:
    with _IMAP(source or "127.0.0.1") as imap:
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error:
            return False
        return True


async def _logins(attempts: list[tuple[str, str, str | None]]) -> list[bool]:
    """At once: Dovecot delays each failure by 2 s, so attempts made one by one would take minutes."""
    return list(await asyncio.gather(*(asyncio.to_thread(_imap_login, *a) for a in attempts)))


def _master_login(address: str) -> bool:
    """As our services log in: the master user, on their socket."""
    password = Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
    try:
        with ServicesImap(os.environ["DOVECOT_IMAP_SOCKET"], timeout=10) as imap:
            imap.login(f"{address}*{os.environ['DOVECOT_MASTER_USER']}", password)
    except imaplib.IMAP4.error:
        return False
    return True


async def _create(client: CommandClient, token: str, address: str) -> None:
    reply = await client.request(SERVICE, CreateAccount(actor_token=token, address=address, plan="kwc",
                                                        initial_password=FIRST))
    assert reply.status == "accepted", reply


async def test_guessing_an_address_over_imap_locks_it_but_not_the_master_user(client, admin_token):
    """Ensure that after as many failed IMAP logins as the limit, even the right password is refused
    (before any hash work), while our services' master-user login to that account still works."""
    address = new_address()
    await _create(client, admin_token, address)

    assert not any(await _logins([(address, WRONG, None)] * MAIL_LOCKOUT))

    assert not await asyncio.to_thread(_imap_login, address, FIRST)
    assert await asyncio.to_thread(_master_login, address)


async def test_a_source_guessing_many_addresses_is_locked(client, admin_token):
    """Ensure one source failing on many addresses (known or not) is refused even for an account it knows
    the password of, while the same account from another source signs in."""
    address, source = new_address(), "127.0.0.71"
    await _create(client, admin_token, address)

    await _logins([(new_address(), WRONG, source) for _ in range(SOURCE_LOCKOUT)])

    assert not await asyncio.to_thread(_imap_login, address, FIRST, source)
    assert await asyncio.to_thread(_imap_login, address, FIRST, "127.0.0.72")


async def test_a_client_keeping_the_previous_password_locks_out_neither_imap_nor_the_panel(client, admin_token):
    """Ensure a phone retrying the password that worked before a change neither locks the address over
    IMAP nor touches the panel's sign-in lockout."""
    address = new_address()
    await _create(client, admin_token, address)
    assert await asyncio.to_thread(_imap_login, address, FIRST)
    reply = await client.request(SERVICE, ChangePassword(actor_token=admin_token, address=address, new_password=SECOND))
    assert reply.status == "accepted", reply
    await eventually(lambda: _refused(address, FIRST), timeout=5, what="the previous password to stop working")

    assert not any(await _logins([(address, FIRST, None)] * (MAIL_LOCKOUT + 5)))

    assert await asyncio.to_thread(_imap_login, address, SECOND)
    assert (await client.request(SERVICE, Login(login=address, password=SECOND))).status == "accepted"


async def test_imap_keeps_working_while_the_account_service_is_down(client, admin_token, account_service):
    """Ensure Dovecot lets logins through when the policy server does not answer."""
    address = new_address()
    await _create(client, admin_token, address)
    # Dovecot sees a bucket's change from the second after its last look (dovecot.conf.in): the first
    # login may come too early; this test is about the policy server being gone, not that race.
    await eventually(lambda: asyncio.to_thread(_imap_login, address, FIRST), what="the new account's first login")
    await account_service.kill()
    try:
        assert await asyncio.to_thread(_imap_login, address, FIRST)
        assert not await asyncio.to_thread(_imap_login, address, WRONG)
    finally:
        await account_service.start()


async def _refused(address: str, password: str) -> bool:
    return not await asyncio.to_thread(_imap_login, address, password)
