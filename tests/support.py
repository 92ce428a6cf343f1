"""Helpers shared by integration tests (importable as tests.support)."""

import asyncio
import contextlib
import imaplib
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aio_pika
import pytest

from shared.auth import TokenIssuer
from shared.launch import credentials
from shared.registry import FrontEntry, ServiceEntry

if TYPE_CHECKING:
    from services.copyjob.adapters.imap import Session

PROGRAMMING_ERROR = re.compile(r"\b(AttributeError|TypeError|NameError|UnboundLocalError|KeyError|IndexError)\b")
REPO = Path(__file__).resolve().parent.parent
RUN = Path(os.environ.get("MAILSS_RUN", REPO / ".run" / "test"))
"""the test stack's run folder (scripts/test.sh exports it)"""
LOGS = RUN / "logs"
ADMIN_LOGIN, ADMIN_PASSWORD, ADMIN_DOMAIN = "testadmin", "Test-admin-password-1!", "example.jp"


def stack_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the tests with scripts/test.sh (it starts the stack)")
    return value


async def holds(value: bool) -> bool:
    """For `eventually(lambda: holds(<expression>))` when the check itself needs no awaiting."""
    return value


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `check` until it is true or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def rabbitmqctl(*args: str) -> str:
    """On the test stack's own node: the system started by scripts/start.sh runs another one."""
    node = stack_env("RABBITMQ_NODENAME")
    return subprocess.run(["rabbitmqctl", "-q", "-n", node, *args], check=True, capture_output=True, text=True).stdout


def system_user(name: str, *groups: str) -> str:
    """A system user of the tests' own (a test-only service, a probe as another local user), made once."""
    if subprocess.run(["id", name], capture_output=True).returncode:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
    for group in groups:
        subprocess.run(["usermod", "-a", "-G", group, name], check=True, capture_output=True)
    return name


def mint(issuer: TokenIssuer, subject: str, role: str = "user", domains: tuple[str, ...] = ()) -> str:
    """A session token signed with the test key, as the account service would issue it."""
    return issuer.issue(subject=subject, role=role, domains=frozenset(domains), now=datetime.now(UTC))[0]  # type: ignore[arg-type]


class ServiceProcess:
    """One service (a registry entry) as a real OS process, so tests can kill and restart it. It runs as
    its own user, as scripts/start.sh runs it (shared/launch.py), so the tests show what the service
    can do without root."""

    def __init__(self, entry: ServiceEntry, env: dict[str, str], amqp_url: str, *, instance: str = "") -> None:
        self.entry, self.module, self.amqp_url, self.ready_queue = entry, entry.module, amqp_url, entry.ready_queue
        self.instance = instance or f"test-{entry.name}"
        self.env = {**env, "INSTANCE": self.instance}
        self.process: asyncio.subprocess.Process | None = None
        self.log_path = LOGS / f"{self.instance}.log"
        self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0

    async def start(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        uid, gid, groups = credentials(self.entry.user)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, env=self.env, cwd=REPO, stdout=log, stderr=log,
            user=uid, group=gid, extra_groups=groups)
        await eventually(self.is_consuming, timeout=60, what=f"{self.module} to consume {self.ready_queue}")

    async def is_consuming(self) -> bool:
        if self.process and self.process.returncode is not None:
            raise AssertionError(f"{self.module} exited with {self.process.returncode}; see {self.log_path}")
        return await consumer_count(self.amqp_url, self.ready_queue) > 0

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.returncode is None:
            self.process.send_signal(sig)
            await asyncio.wait_for(self.process.wait(), 30)

    async def kill(self) -> None:
        await self.stop(signal.SIGKILL)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The process stopped (SIGSTOP), and continued after: a service that hangs without going away."""
        assert self.process is not None and self.process.returncode is None
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)

    def programming_errors(self) -> list[str]:
        """Lines of this run's log naming an error that only a bug raises."""
        with self.log_path.open() as log:
            log.seek(self.log_start)
            return [line for line in log if PROGRAMMING_ERROR.search(line)]


class FrontProcess(ServiceProcess):
    """A front (the web panel) as a real process, its own user: ready when its HTTP health check answers."""

    def __init__(self, entry: FrontEntry, env: dict[str, str], port: int) -> None:
        self.entry, self.module, self.port = entry, entry.module, port  # type: ignore[assignment]
        self.instance = f"test-{entry.name}"
        self.env = {**env, "INSTANCE": self.instance}
        self.process = None
        self.log_path = LOGS / f"{self.instance}.log"
        self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.ready_queue = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def is_consuming(self) -> bool:
        if self.process and self.process.returncode is not None:
            raise AssertionError(f"{self.module} exited with {self.process.returncode}; see {self.log_path}")
        return await asyncio.to_thread(self._answers)

    def _answers(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + self.entry.health_path, timeout=2) as response:  # type: ignore[attr-defined]
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


async def publish_event(amqp_url: str, event: Any, *, principal: str | None = None, routing_key: str | None = None,
                        headers: dict[str, str] | None = None) -> None:
    """An event on `events` as a service's relay publishes it: as that service's broker user (the event's
    owner unless `principal` says otherwise), naming itself in `user_id`, persistent and confirmed. The
    vhost is `amqp_url`'s."""
    from urllib.parse import unquote, urlsplit

    from shared.broker_access import Broker, user_of

    principal = principal or event.ROUTING_KEY.partition(".")[0]
    connection = await aio_pika.connect(Broker.from_env().url(principal, unquote(urlsplit(amqp_url).path[1:])))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("events", ensure=False)
        await exchange.publish(aio_pika.Message(
            event.model_dump_json().encode(), message_id=str(event.message_id), content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=user_of(principal), headers=headers or {}),
            routing_key=routing_key or event.ROUTING_KEY, mandatory=True)


async def consumer_count(amqp_url: str, queue: str) -> int:
    try:
        connection = await aio_pika.connect(amqp_url)
    except (aio_pika.exceptions.AMQPConnectionError, OSError):
        return 0
    async with connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return 0
        return declared.declaration_result.consumer_count


def free_port() -> int:
    """A loopback port nothing listens on (for a test's own server, started when the test wants)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_address(domain: str = ADMIN_DOMAIN) -> str:
    return f"u{uuid.uuid4().hex[:10]}@{domain}"


def imap_login_works(address: str, password: str) -> bool:
    """True when Dovecot accepts the credentials over IMAP."""
    host = os.environ.get("DOVECOT_IMAP_HOST", "127.0.0.1")
    port = int(os.environ.get("DOVECOT_IMAP_PORT", "10143"))
    try:
        with imaplib.IMAP4(host, port, timeout=10) as imap:
            imap.login(address, password)
            imap.noop()
            return True
    except imaplib.IMAP4.error:  # refused; or dropped while the account went (passdb said yes, userdb no)
        return False


async def imap_login(address: str, password: str) -> bool:
    return await asyncio.to_thread(imap_login_works, address, password)


class EventTap:
    """An exclusive queue bound to every event, to see what a service published."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self._connection = connection
        self.received: list[dict] = []

    @classmethod
    async def open(cls, amqp_url: str) -> "EventTap":
        connection = await aio_pika.connect(amqp_url)
        tap = cls(connection)
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind("events", routing_key="#")
        await queue.consume(tap._on_message, no_ack=True)
        return tap

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.received.append({"routing_key": message.routing_key, "body": message.body.decode(),
                              "headers": dict(message.headers or {})})

    def of_type(self, event_type: str, **fields: str) -> list[dict]:
        import json

        found = [json.loads(m["body"]) for m in self.received]
        return [e for e in found if e.get("type") == event_type and all(e.get(k) == v for k, v in fields.items())]

    async def close(self) -> None:
        await self._connection.close()


def stack(*args: str) -> None:
    """scripts/stack.sh, e.g. stack("stop", "ferretdb")."""
    subprocess.run([str(REPO / "scripts" / "stack.sh"), *args], check=True, capture_output=True)


def exported_text(directory: Path) -> str:
    """Every whole line the processes' span exporters wrote so far (OTEL_EXPORTER=file: a file per
    process in `directory`, a JSON line per span; a line still being written is left for later)."""
    return "".join(text[:text.rfind("\n") + 1] for path in sorted(directory.glob("*.jsonl"))
                   if (text := path.read_text(errors="replace")))


def exported_spans(directory: Path) -> list[dict]:
    """The spans of every process, as exported (see exported_text)."""
    import json

    return [json.loads(line) for line in exported_text(directory).splitlines()]


def close_connections_named(name: str) -> int:
    """Close, as an operator would with rabbitmqctl, every broker connection that calls itself `name`."""
    listing = rabbitmqctl("list_connections", "pid", "client_properties")
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if f'"connection_name","{name}"' in line]
    for pid in pids:
        rabbitmqctl("close_connection", pid, "closed by a test")
    return len(pids)


def deliver_over_lmtp(address: str, size: int = 1000) -> bool:
    """Deliver a message of about `size` bytes over LMTP; False when Dovecot refuses it."""
    return deliver(address, subject=f"size {size}", sender="t@example.net", body=("x" * 76 + "\r\n") * (size // 78))


def inbox_count(address: str, password: str) -> int:
    host = os.environ.get("DOVECOT_IMAP_HOST", "127.0.0.1")
    with imaplib.IMAP4(host, int(os.environ.get("DOVECOT_IMAP_PORT", "10143")), timeout=10) as imap:
        imap.login(address, password)
        status, data = imap.select("INBOX", readonly=True)
        assert status == "OK", data
        return int(data[0])


def listening_addresses(port: int) -> set[str]:
    """Local addresses (as /proc/net writes them) with a listening TCP socket on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def deliver(address: str, *, subject: str = "hello", sender: str = "sender@example.net",
            headers: dict[str, str] | None = None, body: str = "a message body\r\n") -> bool:
    """Deliver one message to `address` over LMTP, as Postfix would after our spam checker looked at it
    (its verdict header, which Sieve wants before it forwards or answers; `headers` may add X-Spam-Flag);
    False when Dovecot refuses it."""
    import smtplib
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, address, subject
    message["X-Spam-Checker-Version"] = "SpamAssassin (as the tests' Postfix would add it)"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    with smtplib.LMTP(stack_env("DOVECOT_LMTP_SOCKET")) as lmtp:  # a Unix socket: only Postfix and root open it
        try:
            refused = lmtp.send_message(message, from_addr=sender, to_addrs=[address])
        except (smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused):
            return False
    return not refused


@contextlib.contextmanager
def as_owner(address: str) -> Iterator[imaplib.IMAP4]:
    """Our Dovecot over IMAP, logged in as the account's owner would be (through the master user, on
    the services' socket: the only place it may log in)."""
    password = Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
    with ServicesImap(os.environ["DOVECOT_IMAP_SOCKET"], timeout=10) as imap:
        imap.login(f"{address}*{os.environ['DOVECOT_MASTER_USER']}", password)
        yield imap


class ServicesImap(imaplib.IMAP4):
    """imaplib over a Unix socket: Dovecot's IMAP for the services."""

    def __init__(self, path: str, timeout: float | None = None) -> None:
        self._path = path
        super().__init__("localhost", 0, timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(self._path)
        return sock


async def ours_session(address: str) -> "Session":
    """A copy job Session on our Dovecot, as the account's owner (through the master user)."""
    from services.copyjob.adapters.imap import Session

    password = Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
    return await Session.open(os.environ["DOVECOT_IMAP_SOCKET"], 0, tls=None, server_hostname=None,
                              user=f"{address}*{os.environ['DOVECOT_MASTER_USER']}", password=password)


def fetched(address: str, folder: str, part: str = "BODY.PEEK[]") -> list[bytes]:
    """`part` of every message of a folder, read as the account's owner would (through the master user)."""
    with as_owner(address) as imap:
        status, data = imap.select(folder, readonly=True)
        assert status == "OK", data
        return [imap.fetch(str(number), f"({part})")[1][0][1] for number in range(1, int(data[0]) + 1)]


def subjects_in(address: str, folder: str) -> list[str]:
    """The decoded subjects of a folder."""
    import email
    import email.header

    headers = [email.message_from_bytes(raw) for raw in fetched(address, folder, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")]
    return [str(email.header.make_header(email.header.decode_header(header["Subject"] or ""))) for header in headers]
