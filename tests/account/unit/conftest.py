"""Hand-written fakes of the account ports, offered as fixtures (tests have no __init__.py)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.account.adapters.stored_accounts import directory_gone, directory_line
from services.account.application.directory import Directories, change_of
from services.account.application.handlers import Deps
from services.account.application.ports import MailboxUsage, PendingDeletion
from services.account.domain.account import Account, Admin, LockoutPolicy
from services.account.domain.directory import Index, Line
from services.account.domain.guessing import FailureCounters
from services.account.messages import RecordInDirectory
from shared.auth import TokenIssuer, TokenVerifier, generate_keypair, load_private_key, load_public_key
from shared.contracts.base import Event, WorkItem

TOKEN_LIFETIME = timedelta(hours=1)


class InMemoryAccounts:
    """The Accounts port as one dict; a save replaces state and records its events together, and the
    account's line for its domain's directory (as the stored accounts' outbox sends it)."""

    def __init__(self) -> None:
        self.records: dict[str, Account | Admin | None] = {}
        self.saved_events: list[Event] = []
        self.saved_keys: list[str] = []
        self.pending: dict[str, PendingDeletion] = {}
        self.sent_work: list[WorkItem] = []
        self.versions: dict[str, int] = {}
        self.to_directory: list[RecordInDirectory] = []
        self.directory = InMemoryDirectory()
        self.directories = Directories(self.directory, ListedFromMemory(self))

    def _version(self, key: str) -> int:
        self.versions[key] = self.versions.get(key, 0) + 1
        return self.versions[key]

    async def get(self, key: str) -> Account | Admin | None:
        return self.records.get(key)  # frozen dataclasses: handlers cannot change what is stored

    async def save(self, key: str, principal: Account | Admin | None, *, events: Sequence[Event]) -> None:
        before, version = self.records.get(key), self._version(key)
        if isinstance(principal, Account):
            self.to_directory.append(directory_line(principal, version))
        elif isinstance(before, Account):
            self.to_directory.append(directory_gone(key, version))
        self.records[key] = principal
        self.saved_events.extend(events)
        self.saved_keys.append(key)

    async def pending_deletion(self, key: str) -> PendingDeletion | None:
        return self.pending.get(key)

    async def start_deletion(self, key: str, pending: PendingDeletion) -> None:
        if isinstance(before := self.records.get(key), Account):
            self.to_directory.append(directory_line(before, self._version(key), "deleting"))
        self.records[key] = None
        self.pending[key] = pending
        self.saved_keys.append(key)

    async def finish_deletion(self, key: str, pending: PendingDeletion, *, work: Sequence[WorkItem]) -> None:
        del self.pending[key]
        self.saved_events.append(pending.event)
        self.sent_work.extend(work)
        self.to_directory.append(directory_gone(key, self._version(key)))

    def principal(self, key: str) -> Account | Admin | None:
        return self.records.get(key)

    def snapshot(self) -> tuple[dict[str, Any], tuple[Event, ...]]:
        """Everything a rejected command must leave unchanged."""
        return dict(self.records), tuple(self.saved_events), dict(self.pending)


class FakeHasher:
    """Fast and transparent: the hash is the password with a prefix."""

    PREFIX = "hash:"

    def __init__(self) -> None:
        self.hashed: list[str] = []
        self.verified: list[tuple[str, str]] = []

    async def hash(self, password: str) -> str:
        self.hashed.append(password)
        return self.PREFIX + password

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append((password_hash, password))
        return password_hash == self.PREFIX + password


class FakeMailLogins:
    """The mail server's passdb: which address may sign in over IMAP, with which hash."""

    def __init__(self) -> None:
        self.logins: dict[str, str] = {}
        self.quotas: dict[str, int | None] = {}
        self.homes: dict[str, str] = {}
        self.failing = False

    async def grant(self, address: str, password_hash: str, quota_mb: int | None, home: str) -> None:
        self._check()
        self.logins[address] = password_hash
        self.quotas[address] = quota_mb
        self.homes[address] = home

    async def revoke(self, address: str) -> None:
        self._check()
        self.logins.pop(address, None)

    def _check(self) -> None:
        if self.failing:
            raise OSError(28, "No space left on device")


class CollectingAudit:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)


class SteppingClock:
    """Starts at the real now (tokens are checked by PyJWT against the wall clock) and moves on demand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Tokens:
    """Mints session tokens as the account service would, plus the kinds it must refuse."""

    issuer: TokenIssuer
    foreign_issuer: TokenIssuer = field(
        default_factory=lambda: TokenIssuer(load_private_key(generate_keypair()[0]), TOKEN_LIFETIME))

    def user(self, address: str) -> str:
        return self._mint(self.issuer, address, "user", frozenset())

    def admin(self, *domains: str, login: str = "root") -> str:
        return self._mint(self.issuer, login, "admin", frozenset(domains))

    def expired(self, *domains: str) -> str:
        issued = datetime.now(UTC) - 2 * self.issuer.lifetime
        return self.issuer.issue(subject="root", role="admin", domains=frozenset(domains), now=issued)[0]

    def signed_by_stranger(self, *domains: str) -> str:
        return self._mint(self.foreign_issuer, "root", "admin", frozenset(domains))

    @staticmethod
    def _mint(issuer: TokenIssuer, subject: str, role: str, domains: frozenset[str]) -> str:
        return issuer.issue(subject=subject, role=role, domains=domains, now=datetime.now(UTC))[0]  # type: ignore[arg-type]


@pytest.fixture
def keypair() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture
def token_issuer(keypair: tuple[str, str]) -> TokenIssuer:
    return TokenIssuer(load_private_key(keypair[0]), TOKEN_LIFETIME)


@pytest.fixture
def token_verifier(keypair: tuple[str, str]) -> TokenVerifier:
    return TokenVerifier(load_public_key(keypair[1]))


@pytest.fixture
def tokens(token_issuer: TokenIssuer) -> Tokens:
    return Tokens(token_issuer)


class FakeAdmins:
    """The stored admins that admin tokens are checked against; `root` administers both test domains."""

    def __init__(self) -> None:
        self.stored = {"root": Admin(login="root", password_hash="hash:unused", domains=frozenset({"example.jp", "example.com"}))}

    async def current(self, login: str) -> Admin | None:
        return self.stored.get(login)


@pytest.fixture
def admins() -> FakeAdmins:
    return FakeAdmins()


@pytest.fixture
def accounts() -> InMemoryAccounts:
    return InMemoryAccounts()


@pytest.fixture
def hasher() -> FakeHasher:
    return FakeHasher()


@pytest.fixture
def mail_logins() -> FakeMailLogins:
    return FakeMailLogins()


@pytest.fixture
def audit() -> CollectingAudit:
    return CollectingAudit()


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def lockout() -> LockoutPolicy:
    return LockoutPolicy()


@pytest.fixture
def deps(
    accounts: InMemoryAccounts, admins: FakeAdmins, hasher: FakeHasher, mail_logins: FakeMailLogins, audit: CollectingAudit,
    token_issuer: TokenIssuer, token_verifier: TokenVerifier, clock: SteppingClock, lockout: LockoutPolicy,
) -> Deps:
    return Deps(
        accounts=accounts, admins=admins, hasher=hasher, mail_logins=mail_logins, mailboxes=FakeMailboxes(), audit=audit,
        issuer=token_issuer, verifier=token_verifier, clock=clock, lockout=lockout,
        dummy_hash=FakeHasher.PREFIX + "dummy password never used", new_home_id=HomeIds(),
        unknown_logins=FailureCounters(lockout, max_keys=100),
    )


class FakeMailboxes:
    """What a test's mailboxes hold, by address (empty unless set)."""

    def __init__(self) -> None:
        self.held: dict[str, MailboxUsage] = {}

    async def usage(self, address: str, home: str) -> MailboxUsage | None:
        return self.held.get(address, MailboxUsage())


class HomeIds:
    def __init__(self) -> None:
        self.made = 0

    def __call__(self) -> str:
        self.made += 1
        return f"{self.made:04x}"


class InMemoryDirectory:
    """The Directory port as dicts; counts chunk reads, so a test sees what a page costs."""

    def __init__(self) -> None:
        self.indexes: dict[str, Index] = {}
        self.chunks: dict[tuple[str, str], tuple[Line, ...]] = {}
        self.chunk_reads = 0

    async def index(self, domain: str) -> Index | None:
        return self.indexes.get(domain)

    async def chunk(self, domain: str, chunk_id: str) -> tuple[Line, ...]:
        self.chunk_reads += 1
        return self.chunks.get((domain, chunk_id), ())

    async def write_chunk(self, domain: str, chunk_id: str, lines: Sequence[Line]) -> None:
        self.chunks[domain, chunk_id] = tuple(lines)

    async def write_index(self, domain: str, index: Index) -> None:
        self.indexes[domain] = index

    async def drop_chunks(self, domain: str, chunk_ids: Sequence[str]) -> None:
        for chunk_id in chunk_ids:
            self.chunks.pop((domain, chunk_id), None)

    async def drop_unindexed(self, domain: str, index: Index) -> None:
        named = {chunk_id for _, chunk_id in index.chunks}
        for key in [key for key in self.chunks if key[0] == domain and key[1] not in named]:
            del self.chunks[key]


class ListedFromMemory:
    """The ListedAccounts port over InMemoryAccounts: live accounts, and those being deleted."""

    def __init__(self, accounts: InMemoryAccounts) -> None:
        self._accounts = accounts

    async def lines(self, domain: str) -> list[Line]:
        found = []
        for key, principal in self._accounts.records.items():
            version = self._accounts.versions.get(key, 0)
            if key.endswith("@" + domain) and isinstance(principal, Account):
                found.append(change_of(directory_line(principal, version)))
            elif key.endswith("@" + domain) and key in self._accounts.pending:
                found.append(Line(address=key, plan=None, quota_mb=None, comment="", created_at=None, state="deleting",
                                  version=version))
        return sorted(found, key=lambda line: line.address)  # type: ignore[union-attr]
