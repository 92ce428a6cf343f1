"""Logouts end sessions everywhere: through the real services, an ended token is refused by every service that takes
commands, the account's other sessions go on, and the ended sessions are swept once their tokens expired."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pymongo
import pytest

from shared.client import CommandClient
from shared.contracts.account import SERVICE, CreateAccount, EndSession, GetAccount, Login, SignOutEverywhere
from shared.contracts.copyjob import SERVICE as COPYJOB
from shared.contracts.copyjob import GetJob
from shared.contracts.notifier import SERVICE as NOTIFIER
from shared.contracts.notifier import GetNotifications
from shared.contracts.rules import SERVICE as RULES
from shared.contracts.rules import GetRules
from shared.sessions import bucket_of
from tests.support import eventually, holds, new_address

PASSWORD = "Strong-Passw0rd!"
READS = {
    SERVICE: lambda token, address: GetAccount(actor_token=token, address=address),
    RULES: lambda token, address: GetRules(actor_token=token, address=address),
    COPYJOB: lambda token, address: GetJob(actor_token=token, address=address),
    NOTIFIER: lambda token, address: GetNotifications(actor_token=token, address=address),
}
"""a command of each service that takes commands, as the account's owner sends it"""


async def refused_by(client: CommandClient, token: str, address: str) -> set[str]:
    """The services that answer this session `unauthenticated` (a replay of the session's command, anew each time)."""
    refused = set()
    for service, make in READS.items():
        reply = await client.request(service, make(token, address))
        if reply.status == "rejected" and reply.code == "unauthenticated":
            refused.add(service)
    return refused


async def signed_in(client: CommandClient, address: str) -> str:
    reply = await client.request(SERVICE, Login(login=address, password=PASSWORD))
    assert reply.status == "accepted", reply
    return str(reply.result["token"])


async def test_a_logout_is_refused_by_every_service_and_other_sessions_go_on(
        client, admin_token, rules_service, copyjob_service, notifier_service, rules_db):
    """Ensure after EndSession every service (account, rules, copy jobs, notifier) refuses the ended token, the
    account's other session is still accepted everywhere, SignOutEverywhere then ends that one too, and what each
    service keeps of the logout is its token id in the bucket of its expiry."""
    address = new_address()
    created = await client.request(SERVICE, CreateAccount(actor_token=admin_token, address=address, plan="kwc",
                                                          initial_password=PASSWORD))
    assert created.status == "accepted", created
    phone, laptop = await signed_in(client, address), await signed_in(client, address)
    await eventually(lambda: _all_accept(client, phone, address), what="every service to know the account")

    ended = await client.request(SERVICE, EndSession(actor_token=phone))

    assert ended.status == "accepted" and ended.result == {"login": address, "outcome": "ended"}
    assert SERVICE in await refused_by(client, phone, address)  # the account service's own record: at once
    await eventually(lambda: _refused_everywhere(client, phone, address), what="every service to refuse the ended token")
    assert await refused_by(client, laptop, address) == set()
    again = await client.request(SERVICE, EndSession(actor_token=phone))
    assert again.status == "accepted" and again.result["outcome"] == "already_ended"
    claims = jwt.decode(phone, options={"verify_signature": False})
    kept = rules_db[bucket_of(datetime.fromtimestamp(claims["exp"], UTC))].find_one({"_id": claims["jti"]})
    assert kept is not None and kept["login"] == address and phone not in str(kept)

    everywhere = await client.request(SERVICE, SignOutEverywhere(actor_token=laptop, login=address))

    assert everywhere.status == "accepted" and everywhere.result["outcome"] == "ended_everywhere"
    await eventually(lambda: _refused_everywhere(client, laptop, address), what="every service to refuse every session")
    assert await refused_by(client, await signed_in(client, address), address) == set()


async def test_ended_sessions_are_swept_once_their_hour_is_over(client, admin_token, rules_service, rules_db):
    """Ensure a running service drops the bucket of ended sessions whose tokens all expired, and keeps the current one."""
    address = new_address()
    created = await client.request(SERVICE, CreateAccount(actor_token=admin_token, address=address, plan="kwc",
                                                          initial_password=PASSWORD))
    assert created.status == "accepted", created
    token = await signed_in(client, address)
    assert (await client.request(SERVICE, EndSession(actor_token=token))).status == "accepted"
    claims = jwt.decode(token, options={"verify_signature": False})
    live = bucket_of(datetime.fromtimestamp(claims["exp"], UTC))
    past = bucket_of(datetime.now(UTC) - timedelta(hours=3))
    await eventually(lambda: holds(rules_db[live].find_one({"_id": claims["jti"]}) is not None), what="the logout recorded")
    rules_db[past].insert_one({"_id": "a-token-of-three-hours-ago", "login": address})

    await eventually(lambda: holds(past not in rules_db.list_collection_names()), what="the past hour swept")

    assert rules_db[live].find_one({"_id": claims["jti"]}) is not None


async def _all_accept(client: CommandClient, token: str, address: str) -> bool:
    """No service refuses the session, and the rules service has adopted the account (it answers its rules)."""
    adopted = (await client.request(RULES, READS[RULES](token, address))).status == "accepted"
    return adopted and await refused_by(client, token, address) == set()


async def _refused_everywhere(client: CommandClient, token: str, address: str) -> bool:
    return await refused_by(client, token, address) == set(READS)


@pytest.fixture
def rules_db(rules_env: dict[str, str]) -> Iterator[pymongo.database.Database]:
    """The rules service's own database, as an operator looks at it."""
    client: pymongo.MongoClient = pymongo.MongoClient(rules_env["MONGODB_URL"], tz_aware=True)
    yield client[rules_env["MONGODB_DB"]]
    client.close()
