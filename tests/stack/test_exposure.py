"""What another user on this machine could reach: listeners, sockets, files.

Loopback is shared by every local user. Each TCP listener below either authenticates its clients
(broker users, mail logins, API key) or gives nothing away (spamd, postsrsd); what does not (the
database, LMTP, sendmail) is a Unix socket or a program only its own users may use. The probes run
as an ordinary local user made for them (`runuser`): what they try must fail, while the suite shows
the services, each its own unprivileged user, still do everything.
"""

import asyncio
import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import RUN, eventually, holds, listening_addresses, stack_env, system_user

LOOPBACK = {"0100007F", "00000000000000000000000001000000"}
"""127.0.0.1 and ::1 as /proc writes them"""

LISTENERS = {"amqp": "RABBITMQ_AMQP_PORT", "management": "RABBITMQ_MANAGEMENT_PORT",
             "erlang-distribution": "RABBITMQ_DIST_PORT", "imap": "DOVECOT_IMAP_PORT",
             "postfix": "POSTFIX_SMTP_PORT", "postfix-submit": "POSTFIX_SUBMIT_PORT",
             "spamass-milter": "SPAMASS_MILTER_PORT", "spamd": "SPAMD_PORT", "postsrsd-forward": "POSTSRSD_FORWARD_PORT",
             "postsrsd-reverse": "POSTSRSD_REVERSE_PORT", "mail-policy": "MAIL_POLICY_PORT",
             "postfix-socketmap": "POSTFIX_MAP_PORT"}
"""every TCP listener of the stack and the services, by the variable `scripts/stack.sh env` gives its port in"""

PROBE = "mailss-probe"


@pytest.fixture(scope="module")
def probe() -> str:
    """An ordinary local user: in none of the stack's groups."""
    return system_user(PROBE)


def as_probe(code: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", PROBE, "--", sys.executable, "-c", code, *args], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd="/")


@pytest.mark.parametrize("variable", [*LISTENERS.values(), "epmd"], ids=[*LISTENERS, "epmd"])
def test_every_listener_is_on_loopback_only(variable, account_service):
    """Ensure no part of the stack (broker, Erlang, Dovecot, Postfix, SpamAssassin, postsrsd) nor the
    account service's listeners accepts a connection from outside this machine."""
    port = 4369 if variable == "epmd" else int(stack_env(variable))
    addresses = listening_addresses(port)

    assert addresses, f"nothing listens on {port}"
    assert addresses <= LOOPBACK, f"port {port} listens on {addresses}"


def test_the_web_panel_listens_on_loopback_only(gateway):
    """Ensure the gateway (the web panel, started as scripts/start.sh starts it) accepts no connection from outside."""
    addresses = listening_addresses(gateway.port)

    assert addresses and addresses <= LOOPBACK, f"port {gateway.port} listens on {addresses}"


def _tcp_ports_of(pid: str) -> set[int]:
    listing = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return {int(line.split()[3].rpartition(":")[2]) for line in listing.splitlines() if f"pid={pid}," in line}


def test_the_database_and_lmtp_have_no_tcp_listener():
    """Ensure FerretDB listens on no TCP port and Dovecot only on IMAP (LMTP and the services' IMAP and
    ManageSieve are sockets: no user may upload a Sieve script of their own)."""
    pids = RUN / "pids"

    assert _tcp_ports_of((pids / "ferretdb.pid").read_text().strip()) == set()
    assert _tcp_ports_of((pids / "dovecot.pid").read_text().strip()) == {int(stack_env("DOVECOT_IMAP_PORT"))}


@pytest.mark.parametrize(("path", "owner", "group", "mode"), [
    ("FERRETDB_SOCKET", "root", "mailss", 0o660), ("DOVECOT_LMTP_SOCKET", "postfix", "postfix", 0o600),
    ("DOVECOT_IMAP_SOCKET", "root", "mailss-mail", 0o660), ("DOVECOT_SIEVE_SOCKET", "root", "mailss-mail", 0o660),
], ids=["database", "lmtp", "services-imap", "services-sieve"])
def test_the_private_sockets_belong_to_their_users_only(path, owner, group, mode):
    """Ensure the database's socket is the services' group's alone, LMTP's Postfix's alone, and Dovecot's
    sockets for the master user those of the services that act in mailboxes."""
    import grp
    import pwd

    found = Path(stack_env(path)).stat()

    assert (pwd.getpwuid(found.st_uid).pw_name, grp.getgrgid(found.st_gid).gr_name) == (owner, group)
    assert stat.S_IMODE(found.st_mode) == mode


def test_another_local_user_cannot_reach_the_database(probe):
    """Ensure a local user outside the services' group cannot connect to FerretDB (no authentication of its own)."""
    done = as_probe("import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])",
                    stack_env("FERRETDB_SOCKET"))

    assert done.returncode != 0 and "PermissionError" in done.stderr, done.stderr


def test_another_local_user_cannot_try_the_master_user(probe):
    """Ensure a local user can neither open the services' Dovecot sockets nor use the master user over TCP:
    there, even its right password is refused (so it needs no exemption from the guessing limit)."""
    for path in ("DOVECOT_IMAP_SOCKET", "DOVECOT_SIEVE_SOCKET"):
        done = as_probe("import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])", stack_env(path))
        assert done.returncode != 0 and "PermissionError" in done.stderr, (path, done.stderr)
    master = f"u-{uuid.uuid4().hex[:8]}@example.jp*{stack_env('DOVECOT_MASTER_USER')}"
    right = Path(stack_env("DOVECOT_MASTER_PASSWORD_FILE")).read_text().strip()
    done = as_probe("import imaplib, sys\nwith imaplib.IMAP4('127.0.0.1', int(sys.argv[1]), timeout=30) as imap:\n"
                    "    try:\n        imap.login(sys.argv[2], sys.stdin.read())\n    except imaplib.IMAP4.error:\n"
                    "        print('refused')", stack_env("DOVECOT_IMAP_PORT"), master, stdin=right)
    assert done.stdout.strip() == "refused", done.stderr


def test_another_local_user_cannot_speak_lmtp(probe):
    """Ensure a local user cannot hand mail to Dovecot directly (past SpamAssassin and the X-Spam-* stripping)."""
    done = as_probe("import smtplib, sys; smtplib.LMTP(sys.argv[1])", stack_env("DOVECOT_LMTP_SOCKET"))

    assert done.returncode != 0 and "PermissionError" in done.stderr, done.stderr


RELAY = """
import smtplib, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
    if user:
        try:
            smtp.login(user, password)
        except smtplib.SMTPAuthenticationError as error:
            print("login", error.smtp_code)
            raise SystemExit
    smtp.mail("probe@example.org")
    print("rcpt", smtp.rcpt(sys.argv[4])[0])
"""


@pytest.mark.parametrize(("port", "user", "answer"), [
    ("POSTFIX_SMTP_PORT", "", "rcpt 554"), ("POSTFIX_SUBMIT_PORT", "", "rcpt 554"),
    ("POSTFIX_SUBMIT_PORT", "notifier", "login 535"),
], ids=["world-listener", "services-listener-without-login", "services-listener-guessed-login"])
async def test_another_local_user_cannot_relay_through_postfix(probe, port, user, answer, account_service):
    """Ensure neither Postfix listener relays a local user's mail to the outside world: the world's takes mail
    for the hosted domains only, the services' wants a service's own login."""
    tries: list[subprocess.CompletedProcess[str]] = []

    async def answered() -> bool:  # Postfix's lookups of the hosted domains fail (451) until the account service answers
        tries.append(await asyncio.to_thread(as_probe, RELAY, stack_env(port), user, "guessed-password",
                                             f"{uuid.uuid4().hex}@outside.example"))
        return not tries[-1].stdout.startswith("rcpt 4")

    await eventually(answered, timeout=30, what="a final answer from Postfix")
    assert tries[-1].stdout.strip() == answer, tries[-1].stderr


def test_another_local_user_cannot_submit_with_sendmail(probe):
    """Ensure only the mail user (Dovecot's Sieve) may use the stack's sendmail: its mail leaves unscanned."""
    done = subprocess.run(["runuser", "-u", PROBE, "--", "/usr/sbin/sendmail", "-C", stack_env("POSTFIX_CONFIG_DIR"),
                           "-f", "probe@example.org", "someone@outside.example"],
                          input="Subject: relayed?\n\nno\n", capture_output=True, text=True, timeout=60, cwd="/")

    assert done.returncode != 0 and "not allowed" in done.stderr, done.stderr


def _private_files() -> list[Path]:
    dovecot = RUN / "dovecot"
    return [RUN / "secrets", RUN / "logs", dovecot / "policy.conf", dovecot / "master-users", dovecot / "submit-users",
            dovecot / "passwd.d", Path(stack_env("POSTFIX_FORWARD_MAP").partition(":")[2] + ".lmdb"),
            RUN / "ferretdb", *sorted((RUN / "secrets").rglob("*")), *sorted((RUN / "logs").glob("*.log"))]


def test_another_local_user_cannot_read_a_secret_log_or_map(probe):
    """Ensure no secret, log, password file, forwarding map or database file is open to a local user."""
    paths = [str(path) for path in _private_files()]
    done = as_probe("""
import os, sys
for path in sys.argv[1:]:
    if os.access(path, os.R_OK):
        print(path)
""", *paths)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_the_database_files_are_private():
    """Ensure FerretDB's SQLite files (they hold the argon2 hashes) are readable by their owner only."""
    data = RUN / "ferretdb"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [p for p in data.rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in files), \
        [(p.name, oct(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077]


def test_secrets_are_private():
    """Ensure the secret files (broker users, Dovecot master password, auth policy key) are the owner's only."""
    secrets = RUN / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for path in secrets.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    policy = RUN / "dovecot" / "policy.conf"
    assert stat.S_IMODE(policy.stat().st_mode) == 0o600 and os.stat(policy).st_uid == 0


def _log_lines_naming(log: Path, start: int, login: str) -> list[str]:
    with log.open(errors="replace") as lines:
        lines.seek(start)
        return [line for line in lines if login in line and "Disconnected" in line]


FORGED = """
import imaplib, sys
with imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=30) as imap:
    imap.xatom("ID", '("x-originating-ip" "203.0.113.99")')
    try:
        imap.login(sys.argv[2], "wrong-password")
    except imaplib.IMAP4.error:
        print("refused")
"""


async def test_a_local_user_cannot_pick_the_source_the_guessing_limit_counts(probe):
    """Ensure a local client's IMAP ID cannot name another address as its own (x-originating-ip): Dovecot
    counts it as what it is, 127.0.0.1, so it cannot dodge the per-source guessing limit."""
    login = f"forged-{uuid.uuid4().hex[:8]}@example.jp"
    log = RUN / "logs" / "dovecot.log"
    start = log.stat().st_size

    done = await asyncio.to_thread(as_probe, FORGED, stack_env("DOVECOT_IMAP_PORT"), login)

    assert done.stdout.strip() == "refused", done.stderr
    # Dovecot logs the session when it ends, a moment after the client has gone.
    await eventually(lambda: holds(bool(_log_lines_naming(log, start, login))), timeout=15, what="the session's log line")
    mine = _log_lines_naming(log, start, login)
    assert mine and not any("203.0.113.99" in line for line in mine), mine
    assert any(re.search(r"rip=127\.0\.0\.1\b", line) for line in mine), mine


def _write_as(user: str, groups: list[str], path: Path) -> subprocess.CompletedProcess[str]:
    import grp

    gids = ",".join(str(grp.getgrnam(name).gr_gid) for name in groups)
    return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", f"--groups={gids}", "--", sys.executable,
                           "-c", "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text('x')", str(path)],
                          capture_output=True, text=True, timeout=60, cwd="/")


def test_only_the_account_service_writes_the_auth_database():
    """Ensure the mail processes (vmail, with the groups Dovecot gives them: dovecot, mailss-homes) cannot
    write a passwd-file, while the account service's user can."""
    passwd = Path(stack_env("DOVECOT_PASSWD_DIR"))
    probe = passwd / f".probe-{uuid.uuid4().hex[:8]}"
    try:
        as_mail = _write_as("vmail", ["dovecot", "mailss-homes"], probe)
        as_account = _write_as("mailss-account", ["mailss", "mailss-homes"], probe)

        assert as_mail.returncode != 0 and "PermissionError" in as_mail.stderr, as_mail.stderr
        assert as_account.returncode == 0, as_account.stderr
    finally:
        probe.unlink(missing_ok=True)
