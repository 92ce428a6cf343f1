"""Several workers deploying one account at once: the mail server ends on the newest version."""

import asyncio
import os
import random
from pathlib import Path

import pytest

from services.rules.adapters.managesieve import ManageSieve
from services.rules.domain.rules import Autoreply, RuleSet
from services.rules.domain.sieve import compile_sieve
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount
from shared.plans import Plan
from tests.support import new_address

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted connection")


async def test_concurrent_deployments_end_on_the_newest_version(client, admin_token):
    """Ensure versions uploaded at once in any order leave the newest active and no older script."""
    from sievelib.managesieve import Client

    address = new_address()
    reply = await client.request(ACCOUNT, CreateAccount(actor_token=admin_token, address=address, plan="kwc",
                                                        initial_password="Strong-Passw0rd!"))
    assert reply.status == "accepted", reply
    password = Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
    sieve = ManageSieve("127.0.0.1", int(os.environ.get("DOVECOT_SIEVE_PORT", "14190")),
                        os.environ["DOVECOT_MASTER_USER"], password)
    versions = list(range(2, 14))
    random.shuffle(versions)

    def script(version: int) -> str:
        return compile_sieve(RuleSet(address=address, plan=Plan.KWC, version=version,
                                     autoreply=Autoreply(f"version {version}")))

    results = await asyncio.gather(*(sieve.install(address, script(v), v) for v in versions))

    assert max(results) == 13
    look = Client("127.0.0.1", int(os.environ.get("DOVECOT_SIEVE_PORT", "14190")))
    assert look.connect(os.environ["DOVECOT_MASTER_USER"], password, authz_id=address, authmech="PLAIN")
    active, others = look.listscripts()
    assert (active, others) == ("rules-v13", [])
    assert "version 13" in look.getscript("rules-v13")
    look.logout()
