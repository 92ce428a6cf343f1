"""Dovecot credentials as one passwd-file per account: `<dir>/<domain>/<local>`.

Why per-account files (for 100,000 accounts): a change rewrites one tiny file with an atomic
rename, whatever the number of accounts; Dovecot stats just that file at login, so a change
or a removal counts at the next login; IMAP logins keep working while our services are down;
instances never contend on one big file.
"""

import asyncio
import os
import tempfile
from pathlib import Path

DIR_MODE = 0o2750  # setgid: new domain folders keep the dovecot group
FILE_MODE = 0o640


class DovecotPasswdFiles:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, address: str) -> Path:
        local, _, domain = address.partition("@")
        return self._root / domain / local  # both parts were validated as safe file names

    async def grant(self, address: str, password_hash: str) -> None:
        await asyncio.to_thread(self._write, address, f"{address}:{{ARGON2ID}}{password_hash}::::::\n")

    async def revoke(self, address: str) -> None:
        await asyncio.to_thread(self._path(address).unlink, missing_ok=True)

    def _write(self, address: str, line: str) -> None:
        path = self._path(address)
        path.parent.mkdir(mode=DIR_MODE, exist_ok=True)
        if path.exists() and path.read_text() == line:
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "w") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
