"""A second Dovecot standing for the other provider's server: its own users, mail and port (plain
IMAP and IMAPS with a test CA's certificate for `localhost`), `.` as hierarchy separator. Used by
the copy job's tests and its benchmark."""

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.support import eventually

SOURCE_IMAP_PORT = 11143
SOURCE_IMAPS_PORT = 11993
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

    @classmethod
    async def start(cls, folder: Path, cert: Path, key: Path) -> "SourceServer":
        shutil.rmtree(folder, ignore_errors=True)
        for sub in ("base", "state", "mail"):
            (folder / sub).mkdir(parents=True)
        shutil.chown(folder / "mail", "vmail", "vmail")
        (folder / "users").write_text("")
        os.chmod(folder / "users", 0o644)
        conf = folder / "dovecot.conf"
        conf.write_text(CONFIG.format(dir=folder, port=SOURCE_IMAP_PORT, tls_port=SOURCE_IMAPS_PORT, cert=cert, key=key))
        subprocess.run(["dovecot", "-c", str(conf)], check=True)

        async def answering() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", SOURCE_IMAP_PORT)
            except OSError:
                return False
            writer.close()
            return True

        await eventually(answering, timeout=30, what=f"the source Dovecot (see {folder / 'dovecot.log'})")
        return cls(folder)

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.folder / "dovecot.conf"), "stop"], check=False)

    def maildir(self, address: str) -> Path:
        local, domain = address.split("@")
        return self.folder / "mail" / domain / local

    async def add_user(self, address: str, password: str) -> None:
        """Dovecot re-reads a passwd-file when its mtime (seconds) changes, and looks at most once a
        second: move the mtime on a second, then wait until its auth process knows the user."""
        users = self.folder / "users"
        before = users.stat().st_mtime
        with users.open("a") as file:
            file.write(f"{address}:{{PLAIN}}{password}::::::\n")
        moment = max(time.time(), before + 1)
        os.utime(users, (moment, moment))
        conf = str(self.folder / "dovecot.conf")

        async def known() -> bool:
            check = await asyncio.create_subprocess_exec("doveadm", "-c", conf, "auth", "test", address, password,
                                                         stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            return await check.wait() == 0

        await eventually(known, timeout=10, what=f"the source Dovecot to know {address}")


