"""What another user on this machine could reach: listeners, files."""

import os
import stat

import pytest

from tests.support import RUN, listening_addresses

LOOPBACK = {"0100007F", "00000000000000000000000001000000"}
"""127.0.0.1 and ::1 as /proc writes them"""


LISTENERS = {"amqp": "RABBITMQ_AMQP_PORT", "management": "RABBITMQ_MANAGEMENT_PORT",
             "erlang-distribution": "RABBITMQ_DIST_PORT", "imap": "DOVECOT_IMAP_PORT", "lmtp": "DOVECOT_LMTP_PORT",
             "managesieve": "DOVECOT_SIEVE_PORT", "postfix": "POSTFIX_SMTP_PORT", "postfix-sieve": "POSTFIX_SIEVE_SMTP_PORT",
             "spamass-milter": "SPAMASS_MILTER_PORT", "spamd": "SPAMD_PORT", "postsrsd-forward": "POSTSRSD_FORWARD_PORT",
             "postsrsd-reverse": "POSTSRSD_REVERSE_PORT", "ferretdb": "FERRETDB_PORT"}
"""every TCP listener of the stack, by the variable `scripts/stack.sh env` gives its port in"""


@pytest.mark.parametrize("variable", [*LISTENERS.values(), "epmd"], ids=[*LISTENERS, "epmd"])
def test_the_stack_listens_on_loopback_only(variable):
    """Ensure no part of the stack (broker, Erlang, database, Dovecot, Postfix, SpamAssassin) accepts a
    connection from outside this machine."""
    port = 4369 if variable == "epmd" else int(os.environ[variable])
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
