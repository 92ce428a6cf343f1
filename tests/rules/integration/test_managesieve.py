"""The ManageSieve adapter against the real Dovecot: several workers deploying one account at once
end on the newest version; kept connections are reused, per incarnation, and replaced when stale."""

import asyncio
import os
import random
from pathlib import Path

import pytest

from services.rules.adapters.managesieve import ManageSieve, UnixClient
from services.rules.domain.rules import Autoreply, RuleSet
from services.rules.domain.sieve import compile_sieve
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount
from shared.plans import Plan
from tests.support import new_address

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted connection")


def _adapter(**kept) -> ManageSieve:
    return ManageSieve(os.environ["DOVECOT_SIEVE_SOCKET"],
                       os.environ["DOVECOT_MASTER_USER"], Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip(),
                       **kept)


async def _new_account(client, admin_token) -> str:
    address = new_address()
    reply = await client.request(ACCOUNT, CreateAccount(actor_token=admin_token, address=address, plan="kwc",
                                                        initial_password="Strong-Passw0rd!"))
    assert reply.status == "accepted", reply
    return address


def _script(address: str, version: int) -> str:
    return compile_sieve(RuleSet(address=address, plan=Plan.KWC, version=version, autoreply=Autoreply(f"version {version}")))


def _scripts_of(address: str) -> tuple[str, list[str], str]:
    look = UnixClient(os.environ["DOVECOT_SIEVE_SOCKET"])
    assert look.connect(os.environ["DOVECOT_MASTER_USER"], Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip(),
                        authz_id=address, authmech="PLAIN")
    active, others = look.listscripts()
    text = look.getscript(active)
    look.logout()
    return active, others, text


class CountingLogins(ManageSieve):
    def __init__(self, **kept) -> None:
        adapter = _adapter(**kept)
        self.__dict__.update(adapter.__dict__)
        self.logins: list[str] = []

    def _connect(self, address):
        self.logins.append(address)
        return super()._connect(address)


async def test_a_kept_connection_serves_the_next_deployments_of_that_incarnation_only(client, admin_token):
    """Ensure one login serves an account's run of changes, a new incarnation logs in again, and a
    version already seen active costs no round trip."""
    address = await _new_account(client, admin_token)
    sieve = CountingLogins()

    for version in (2, 3, 4):
        assert await sieve.install(address, _script(address, version), version, incarnation="first") == version
    assert await sieve.install(address, _script(address, 3), 3, incarnation="first") == 4
    assert sieve.logins == [address]
    assert _scripts_of(address)[:2] == ("rules-v4", [])

    assert await sieve.install(address, _script(address, 5), 5, incarnation="second") == 5
    assert sieve.logins == [address, address]
    await sieve.close()


async def test_a_stale_kept_connection_is_replaced(client, admin_token):
    """Ensure a kept connection the server closed (restart, timeout) gives way to a new one and the
    deployment goes through."""
    address = await _new_account(client, admin_token)
    sieve = CountingLogins()
    await sieve.install(address, _script(address, 2), 2)
    for session in sieve._idle.values():
        session.client.sock.close()

    assert await sieve.install(address, _script(address, 3), 3) == 3
    assert len(sieve.logins) == 2
    assert _scripts_of(address)[0] == "rules-v3"
    await sieve.close()


async def test_connections_beyond_the_limit_or_idle_too_long_are_let_go(client, admin_token):
    """Ensure no more than `keep` connections stay open, and none longer idle than `idle_s`."""
    now = [0.0]
    sieve = CountingLogins(keep=2, idle_s=30, clock=lambda: now[0])
    addresses = [await _new_account(client, admin_token) for _ in range(3)]
    for address in addresses:
        await sieve.install(address, _script(address, 2), 2)
    assert [key[0] for key in sieve._idle] == addresses[1:]

    now[0] = 31.0
    await sieve.install(addresses[0], _script(addresses[0], 3), 3)
    assert [key[0] for key in sieve._idle] == addresses[:1]
    await sieve.close()


async def test_concurrent_deployments_end_on_the_newest_version(client, admin_token):
    """Ensure versions uploaded at once in any order leave the newest active and no older script."""
    address = new_address()
    reply = await client.request(ACCOUNT, CreateAccount(actor_token=admin_token, address=address, plan="kwc",
                                                        initial_password="Strong-Passw0rd!"))
    assert reply.status == "accepted", reply
    password = Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
    sieve = ManageSieve(os.environ["DOVECOT_SIEVE_SOCKET"], os.environ["DOVECOT_MASTER_USER"], password)
    versions = list(range(2, 14))
    random.shuffle(versions)

    def script(version: int) -> str:
        return compile_sieve(RuleSet(address=address, plan=Plan.KWC, version=version,
                                     autoreply=Autoreply(f"version {version}")))

    workers = [sieve, _adapter(), _adapter()]  # three processes' worth: each takes one account's turns in order
    results = await asyncio.gather(*(workers[n % 3].install(address, script(v), v) for n, v in enumerate(versions)))

    assert max(results) == 13
    look = UnixClient(os.environ["DOVECOT_SIEVE_SOCKET"])
    assert look.connect(os.environ["DOVECOT_MASTER_USER"], password, authz_id=address, authmech="PLAIN")
    active, others = look.listscripts()
    assert (active, others) == ("rules-v13", [])
    assert "version 13" in look.getscript("rules-v13")
    look.logout()
