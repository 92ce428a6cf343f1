"""ListAccounts through the real account service, RabbitMQ and FerretDB: each domain's directory follows
the accounts (eventually), pages with a cursor, and is built from the accounts when it is missing."""

import uuid

import pymongo
import pytest
from argon2 import PasswordHasher

from services.account.adapters.stored_accounts import principal_doc
from services.account.adapters.stored_directory import COLLECTION as DIRECTORY
from services.account.domain.account import Admin
from shared.client import CommandClient
from shared.contracts.account import SERVICE, CreateAccount, DeleteAccount, ListAccounts, Login
from tests.support import eventually, mint

PASSWORD = "List-Passw0rd-1!"
ADMIN_PASSWORD = "List-admin-passw0rd!"


@pytest.fixture(scope="module")
def domains() -> tuple[str, ...]:
    tag = uuid.uuid4().hex[:8]
    return f"a{tag}.example.jp", f"b{tag}.example.jp", f"c{tag}.example.jp"


@pytest.fixture(scope="module")
def database(service_env: dict[str, str], account_service) -> pymongo.database.Database:
    return pymongo.MongoClient(service_env["MONGODB_URL"])[service_env["MONGODB_DB"]]


@pytest.fixture(scope="module")
async def lister(client: CommandClient, database, domains: tuple[str, ...]) -> str:
    """A session of an admin of both domains (stored as the first admin is: no command makes admins)."""
    login = f"lister{uuid.uuid4().hex[:6]}"
    admin = Admin(login=login, password_hash=PasswordHasher().hash(ADMIN_PASSWORD), domains=frozenset(domains))
    database["accounts"].insert_one({"_id": login, "version": 1, **principal_doc(admin)})
    reply = await client.request(SERVICE, Login(login=login, password=ADMIN_PASSWORD))
    assert reply.status == "accepted", reply
    return reply.result["token"]


async def pages(client: CommandClient, token: str, domain: str, **asked) -> list[list[dict]]:
    found, after = [], None
    while True:
        reply = await client.request(SERVICE, ListAccounts(actor_token=token, domain=domain, after=after, **asked))
        assert reply.status == "accepted", reply
        found.append(reply.result["accounts"])
        if (after := reply.result["next"]) is None:
            return found


def addresses(found: list[list[dict]]) -> list[str]:
    return [account["address"] for page in found for account in page]


async def test_each_domains_accounts_are_listed_paged_and_deleted_ones_go(client, lister, domains, issuer):
    """Ensure accounts made in two domains are listed per domain, sorted and paged, and a deleted one is
    shown as deleting, then not at all; nobody but an admin of the domain may list it."""
    first, second, _ = domains
    made = {first: sorted(f"u{n}-{uuid.uuid4().hex[:4]}@{first}" for n in range(5)),
            second: sorted(f"v{n}-{uuid.uuid4().hex[:4]}@{second}" for n in range(3))}
    for address in [*made[first], *made[second]]:
        reply = await client.request(SERVICE, CreateAccount(actor_token=lister, address=address, plan="kwc",
                                                            initial_password=PASSWORD, comment="list test"))
        assert reply.status == "accepted", reply

    async def all_listed() -> bool:
        return [addresses(await pages(client, lister, domain)) for domain in made] == list(made.values())

    await eventually(all_listed, what="every account in its domain's list")
    paged = await pages(client, lister, first, limit=2)
    assert [len(page) for page in paged] == [2, 2, 1] and addresses(paged) == made[first]
    assert {(a["plan"], a["comment"], a["state"]) for a in paged[0]} == {("kwc", "list test", "active")}
    assert all(a["created_at"] for page in paged for a in page)

    foreign = (await client.request(SERVICE, ListAccounts(actor_token=lister, domain=second, limit=1))).result["next"]
    refused = await client.request(SERVICE, ListAccounts(actor_token=lister, domain=first, after=foreign))
    assert (refused.status, refused.code, refused.errors[0].code) == ("rejected", "validation_failed", "invalid_cursor")
    for token in (mint(issuer, made[first][0]), mint(issuer, "testadmin", role="admin", domains=("example.jp",))):
        reply = await client.request(SERVICE, ListAccounts(actor_token=token, domain=first))
        assert (reply.status, reply.code) == ("rejected", "forbidden")

    deleted = made[first][1]
    assert (await client.request(SERVICE, DeleteAccount(actor_token=lister, address=deleted))).status == "accepted"
    states: list[str] = []

    async def gone() -> bool:
        shown = {a["address"]: a["state"] for page in await pages(client, lister, first) for a in page}
        states.append(shown.get(deleted, "gone"))
        return deleted not in shown

    await eventually(gone, what="the deleted account to leave the list")
    assert set(states) <= {"active", "deleting", "gone"}
    assert addresses(await pages(client, lister, first)) == [a for a in made[first] if a != deleted]
    assert addresses(await pages(client, lister, first, prefix=made[first][0][:6].upper())) == [made[first][0]]


async def test_a_missing_directory_is_built_from_the_accounts(client, lister, domains, database):
    """Ensure a domain whose directory is gone (accounts made before it was kept) is listed in full: the
    list builds it from the accounts."""
    domain = domains[2]
    made = sorted(f"w{n}@{domain}" for n in range(4))
    for address in made:
        reply = await client.request(SERVICE, CreateAccount(actor_token=lister, address=address, plan="kwc",
                                                            initial_password=PASSWORD))
        assert reply.status == "accepted", reply

    async def all_listed() -> bool:
        return addresses(await pages(client, lister, domain)) == made

    await eventually(all_listed, what="every account in the list")
    database[DIRECTORY].delete_many({"domain": domain})

    assert addresses(await pages(client, lister, domain, limit=3)) == made
    assert database[DIRECTORY].count_documents({"domain": domain}) == 2  # the index and its one chunk
