"""A second Dovecot standing for the other provider's server: its own users, mail and port."""

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

SOURCE_IMAP_PORT = 11143
SOURCE_IMAPS_PORT = 11993
SOURCE_DIR = REPO / ".run" / "source-dovecot"
CONFIG = """
base_dir = {dir}/base
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
mail_uid = vmail
mail_gid = vmail
first_valid_uid = 100
auth_cache_size = 0
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {dir}/users
  default_fields = uid=vmail gid=vmail home={dir}/mail/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
namespace inbox {{
  inbox = yes
  separator = .
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox "Sent Items" {{
    special_use = \\Sent
  }}
}}
"""


class SourceServer:
    """Another provider's IMAP server: a Dovecot of its own with `.` as hierarchy separator."""

    port = SOURCE_IMAP_PORT
    tls_port = SOURCE_IMAPS_PORT

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add_user(self, address: str, password: str) -> None:
        """Dovecot re-reads a passwd-file when its mtime (seconds) changes: move it on a second each time."""
        users = self.folder / "users"
        before = users.stat().st_mtime
        with users.open("a") as file:
            file.write(f"{address}:{{PLAIN}}{password}::::::\n")
        moment = max(time.time(), before + 1)
        os.utime(users, (moment, moment))
        time.sleep(max(0.0, moment - time.time()) + 1.05)  # and it stats the file at most once a second


@pytest.fixture(scope="session")
def source_server(test_ca) -> Iterator[SourceServer]:
    shutil.rmtree(SOURCE_DIR, ignore_errors=True)
    for sub in ("base", "state", "mail"):
        (SOURCE_DIR / sub).mkdir(parents=True)
    shutil.chown(SOURCE_DIR / "mail", "vmail", "vmail")
    (SOURCE_DIR / "users").write_text("")
    os.chmod(SOURCE_DIR / "users", 0o644)
    conf = SOURCE_DIR / "dovecot.conf"
    conf.write_text(CONFIG.format(dir=SOURCE_DIR, port=SOURCE_IMAP_PORT, tls_port=SOURCE_IMAPS_PORT, cert=test_ca[1],
                                  key=test_ca[2]))
    subprocess.run(["dovecot", "-c", str(conf)], check=True)
    deadline = time.monotonic() + 30
    while subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{SOURCE_IMAP_PORT}"], capture_output=True).returncode:
        assert time.monotonic() < deadline, (SOURCE_DIR / "dovecot.log").read_text()[-2000:]
        time.sleep(0.2)
    yield SourceServer(SOURCE_DIR)
    subprocess.run(["doveadm", "-c", str(conf), "stop"], check=False)


@pytest.fixture
def copyjob_service_log(copyjob_service):
    """What the copy job service has logged so far (its spans too: OTEL_EXPORTER=console)."""
    return lambda: copyjob_service.log_path.read_text(errors="replace")
