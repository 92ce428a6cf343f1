"""What another user on this machine could reach: listeners, files."""

import os
import stat
from pathlib import Path

import pytest

from tests.support import listening_addresses

RUN = Path(__file__).resolve().parents[2] / ".run"


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}
"""127.0.0.1 and ::1 as /proc writes them"""


@pytest.mark.parametrize("port", [5672, 15672, 25672, 4369, 10143, 10024, 14190, 10587, 10783, 10784, 27017],
                         ids=["amqp", "management", "erlang-distribution", "epmd", "imap", "lmtp", "managesieve",
                              "postfix", "spamass-milter", "spamd", "ferretdb"])
def test_the_stack_listens_on_loopback_only(port):
    """Ensure no part of the stack (broker, Erlang, database, Dovecot, Postfix, SpamAssassin) accepts a
    connection from outside this machine."""
    addresses = listening_addresses(port)

    assert addresses, f"nothing listens on {port}"
    assert addresses <= LOOPBACK, f"port {port} listens on {addresses}"


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
