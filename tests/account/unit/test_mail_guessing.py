"""The guessing limit for mail logins, as Dovecot's auth policy requests drive it."""

from datetime import UTC, datetime, timedelta
from ipaddress import ip_network

from aiohttp.test_utils import TestClient, TestServer

from services.account.adapters.policy_server import PolicyServer
from services.account.application.mail_guessing import MailGuessingLimit, MailLoginAttempt
from services.account.domain.account import LockoutPolicy
from services.account.domain.guessing import FailureCounters, KnownGood

ADDRESS, SOURCE, LOOPBACK = "taro@example.jp", "192.0.2.7", "127.0.0.1"
RIGHT, OLD, GUESS = "a1", "b2", "c3"
POLICY = LockoutPolicy(max_failures=3, window=timedelta(minutes=15), lock_for=timedelta(minutes=15))
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def make_limit(max_keys: int = 100) -> MailGuessingLimit:
    return MailGuessingLimit(per_address=FailureCounters(POLICY, max_keys), per_source=FailureCounters(POLICY, max_keys),
                             known_good=KnownGood(max_keys), unlimited_sources=(ip_network("127.0.0.0/8"),))


def attempt(fingerprint: str, *, address: str = ADDRESS, source: str = SOURCE, master: bool = False) -> MailLoginAttempt:
    return MailLoginAttempt(address=address, fingerprint=fingerprint, source=source, through_master=master)


def test_an_address_is_refused_after_the_failures_until_the_lock_is_over():
    """Ensure guesses at one address are refused before any hash work once the limit is reached."""
    limit = make_limit()
    for _ in range(POLICY.max_failures):
        assert limit.allows(attempt(GUESS), NOW)
        limit.failed(attempt(GUESS), NOW)

    assert not limit.allows(attempt(GUESS), NOW)
    assert not limit.allows(attempt(RIGHT, source="198.51.100.1"), NOW)
    assert limit.allows(attempt(GUESS), NOW + POLICY.lock_for)


def test_a_source_guessing_many_addresses_is_refused_but_loopback_as_a_whole_is_not():
    """Ensure one source spraying addresses is locked, while loopback (our webmail and services) only ever
    locks the addresses it fails on."""
    limit = make_limit()
    for n in range(POLICY.max_failures):
        limit.failed(attempt(GUESS, address=f"u{n}@example.jp"), NOW)
        limit.failed(attempt(GUESS, address=f"u{n}@example.jp", source=LOOPBACK), NOW)

    assert not limit.allows(attempt(GUESS, address="fresh@example.jp"), NOW)
    assert limit.allows(attempt(GUESS, address="fresh@example.jp", source=LOOPBACK), NOW)


def test_master_user_logins_are_never_limited_nor_counted():
    """Ensure logins through the master user pass a locked address and source and count for nothing."""
    limit = make_limit()
    for _ in range(POLICY.max_failures):
        limit.failed(attempt(GUESS), NOW)
    for _ in range(10):
        limit.failed(attempt(GUESS, master=True, address="other@example.jp", source="198.51.100.9"), NOW)

    assert limit.allows(attempt(RIGHT, master=True), NOW)
    assert limit.allows(attempt(GUESS, address="other@example.jp", source="198.51.100.9"), NOW)


def test_a_client_still_using_the_previous_password_neither_counts_nor_locks_the_owner_out():
    """Ensure a phone retrying a password that once worked is not a guesser: its failures do not count,
    and the owner's current password passes a lock an attacker caused."""
    limit = make_limit()
    limit.succeeded(attempt(OLD))
    limit.succeeded(attempt(RIGHT))
    for _ in range(20):
        limit.failed(attempt(OLD), NOW)
    assert limit.allows(attempt(GUESS), NOW)

    for _ in range(POLICY.max_failures):
        limit.failed(attempt(GUESS), NOW)
    assert not limit.allows(attempt(GUESS), NOW)
    assert limit.allows(attempt(RIGHT), NOW) and limit.allows(attempt(OLD), NOW)


def test_counters_are_bounded_and_expire():
    """Ensure a spray of addresses keeps at most max_keys counters and a finished window is forgotten."""
    limit = make_limit(max_keys=100)
    for n in range(500):
        limit.failed(attempt(GUESS, address=f"u{n}@example.jp", source=f"198.51.100.{n % 250}"), NOW)
    assert len(limit.per_address) == 100 and len(limit.per_source) == 100

    limit.per_address.failed(ADDRESS, NOW)
    assert limit.per_address.state(ADDRESS, NOW + POLICY.window).failures == 0


async def test_the_policy_server_answers_dovecot_and_refuses_strangers():
    """Ensure the HTTP endpoint speaks Dovecot's protocol (allow/report, status 0/-1), and refuses a
    request without the API key or with a malformed body."""
    server = PolicyServer(make_limit(), host="127.0.0.1", port=0, api_key="k" * 32, clock=lambda: NOW)
    body = {"login": ADDRESS, "login_user": "", "master": "", "pwhash": "ff00", "remote": SOURCE, "protocol": "imap"}
    async with TestClient(TestServer(server.app())) as http:
        key = {"X-API-Key": "k" * 32}
        for _ in range(POLICY.max_failures):
            assert (await (await http.post("/?command=allow", json=body, headers=key)).json())["status"] == 0
            await http.post("/?command=report", json={**body, "success": False, "policy_reject": False}, headers=key)
        refused = await (await http.post("/?command=allow", json=body, headers=key)).json()
        stranger = await http.post("/?command=allow", json=body, headers={"X-API-Key": "wrong"})
        malformed = await http.post("/?command=allow", data=b"{", headers=key)

    assert refused["status"] == -1
    assert (stranger.status, malformed.status) == (401, 400)
