"""The account's active Sieve script, written over ManageSieve as the Dovecot master user acting for
the account (SASL PLAIN with an authorization id), so no account password is ever needed.

Each version is its own script, `rules-v<version>`: a worker uploads its version, then activates
the newest version present (its own, or a newer one another worker uploaded meanwhile), then
deletes what is older than the active one. So workers may deploy the same account at once (several
processes, several items) and the mail server only ever moves forward, ending on the newest rules.

A login costs about 15 times a deployment (bench/rules_deploy.py), and changes come in runs (a user
going through the settings page), so a connection stays open for a while after its deployment, one
per account incarnation (address and generation: a connection is bound to the home it logged into,
and an address created again has a new home). A kept connection that fails is replaced once.
Deployments of one account take turns within a process, so a process holds at most one connection
per account (Dovecot refuses an eleventh per user and address: mail_max_userip_connections).
"""

import asyncio
import contextlib
import re
import socket
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from opentelemetry.trace import SpanKind
from sievelib.managesieve import Client, Error  # type: ignore[import-untyped]

from shared.telemetry import span

# Dovecot's socket for the services is a Unix one, without TLS; sievelib warns on every plaintext login.
warnings.filterwarnings("ignore", message="Credentials are sent over an unencrypted connection")

SCRIPT_PREFIX = "rules-v"
VERSIONED = re.compile(rf"^{SCRIPT_PREFIX}(\d+)$")


class UnixClient(Client):  # type: ignore[misc]
    """sievelib's client over a Unix socket (it only dials TCP): Dovecot's ManageSieve for the
    services, where alone the master user may log in."""

    def __init__(self, path: str) -> None:
        super().__init__(path, 0)
        self._path = path

    def connect(self, login: str, password: str, authz_id: str = "", starttls: bool = False, ssl: bool = False,
                authmech: str | None = None) -> bool:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(Client.read_timeout)
            self.sock.connect(self._path)
        except OSError as error:
            self.sock.close()
            raise Error(f"Connection to server failed: {error}") from None
        if not self._Client__get_capabilities():
            raise Error("Failed to read capabilities from server")
        return bool(self._Client__authenticate(login, password, authz_id, authmech))


class MailServerUnavailable(ConnectionError):
    """ManageSieve does not answer or refuses the login: try again later."""


class ScriptRefused(Exception):
    """Dovecot refused the script itself: trying again would not help."""


def _version(name: str | None) -> int:
    found = VERSIONED.match(name or "")
    return int(found[1]) if found else 0


@dataclass
class _Session:
    client: Client
    active: int = 0
    """the newest version this connection saw active (the server never goes back)"""
    used_at: float = 0.0


class ManageSieve:
    def __init__(self, socket_path: str, master_user: str, master_password: str, *,
                 keep: int = 128, idle_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._where = f"ManageSieve at {socket_path}"
        self._socket_path = socket_path
        self._master_user, self._master_password = master_user, master_password
        self._keep, self._idle_s, self._clock = keep, idle_s, clock
        self._idle: OrderedDict[Hashable, _Session] = OrderedDict()
        self._turns: dict[Hashable, tuple[asyncio.Lock, int]] = {}
        """per account being deployed: its lock, and how many deployments hold or wait for it"""

    async def install(self, address: str, script: str, version: int, *, incarnation: Hashable = None) -> int:
        """Upload `version` and make the newest uploaded version active; return the active version."""
        key = (address, incarnation)
        lock, users = self._turns.get(key, (asyncio.Lock(), 0))
        self._turns[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._install(key, address, script, version)
        finally:
            lock, users = self._turns[key]
            if users == 1:
                del self._turns[key]
            else:
                self._turns[key] = (lock, users - 1)

    async def _install(self, key: Hashable, address: str, script: str, version: int) -> int:
        session = self._idle.pop(key, None)
        if session is not None:
            if session.active >= version:
                await self._check_in(key, session)
                return session.active
            with contextlib.suppress(MailServerUnavailable):  # gone stale: Dovecot restarted, or timed it out
                return await self._deploy(key, session, script, version)
        session = _Session(await asyncio.to_thread(self._connect, address))
        return await self._deploy(key, session, script, version)

    async def close(self) -> None:
        sessions, self._idle = list(self._idle.values()), OrderedDict()
        await asyncio.to_thread(_log_out, sessions)

    async def _deploy(self, key: Hashable, session: _Session, script: str, version: int) -> int:
        with span("ManageSieve PUTSCRIPT", kind=SpanKind.CLIENT,
                  attributes={"mailss.account": str(key[0]) if isinstance(key, tuple) else str(key),
                              "mailss.version": version, "mailss.script_bytes": len(script.encode())}) as current:
            try:
                session.active = await asyncio.to_thread(self._activate_newest, session.client, script, version)
            except ScriptRefused:
                await self._check_in(key, session)
                raise
            except (OSError, Error) as error:
                await asyncio.to_thread(_log_out, [session])
                raise MailServerUnavailable(f"{self._where}: {error}") from None
            current.set_attribute("mailss.active_version", session.active)
        await self._check_in(key, session)
        return session.active

    async def _check_in(self, key: Hashable, session: _Session) -> None:
        """Keep the connection (the latest one per account), and let go of the least recently used
        beyond `keep` and of those idle longer than `idle_s`."""
        now = self._clock()
        session.used_at = now
        leaving = [self._idle.pop(key)] if key in self._idle else []
        self._idle[key] = session
        while self._idle and (len(self._idle) > self._keep or now - next(iter(self._idle.values())).used_at > self._idle_s):
            leaving.append(self._idle.popitem(last=False)[1])
        if leaving:
            await asyncio.to_thread(_log_out, leaving)

    def _connect(self, address: str) -> Client:
        client = UnixClient(self._socket_path)
        try:
            connected = client.connect(self._master_user, self._master_password, authz_id=address, authmech="PLAIN")
        except (OSError, Error) as error:
            raise MailServerUnavailable(f"{self._where}: {error}") from None
        if not connected:
            raise MailServerUnavailable(f"ManageSieve refused the login for {address}: {client.errmsg!r}")
        return client

    @staticmethod
    def _activate_newest(client: Client, script: str, version: int) -> int:
        """Never activates anything but the newest version present, so the active script never goes
        back; then deletes the versions older than the active one (its own included, if superseded)."""
        if not client.putscript(f"{SCRIPT_PREFIX}{version}", script):
            raise ScriptRefused(f"PUTSCRIPT refused: {client.errmsg!r}")
        active, others = _listing(client)
        newest = max([_version(active), *(_version(name) for name in others)])
        if newest > _version(active):
            if not client.setactive(f"{SCRIPT_PREFIX}{newest}"):
                raise Error(f"SETACTIVE refused: {client.errmsg!r}")
            present = [name for name in (active, *others) if name]
            active, others = f"{SCRIPT_PREFIX}{newest}", [name for name in present if _version(name) != newest]
        for old in others:
            if _version(old) < _version(active):
                client.deletescript(old)
        return _version(active)


def _listing(client: Client) -> tuple[str | None, list[str]]:
    listing = client.listscripts()
    if listing is None:
        raise Error(f"LISTSCRIPTS refused: {client.errmsg!r}")
    active, others = listing
    return active, list(others)


def _log_out(sessions: list[_Session]) -> None:
    for session in sessions:
        with contextlib.suppress(OSError, Error):
            session.client.logout()
