"""Dovecot credentials and quotas in 1024 passwd-files bucketed by a hash of the address.

Dovecot finds an account's bucket itself (`passwd.d/%3.1024Nu`, the MD5-based %N modifier), so:
- a change rewrites one small file (about 100 lines at 100,000 accounts) by atomic rename;
- Dovecot keeps at most 1024 files open and parsed, whatever the number of accounts
  (one file per account would hold one descriptor per account that ever logged in);
- IMAP logins keep working while our services are down.
Writers of one bucket take an flock on its lock file, so instances and shards on the same host
never lose each other's lines.
"""

import asyncio
import fcntl
import hashlib
import os
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

BUCKETS = 1024
BUCKET_DIGITS = 3
FILE_MODE = 0o640


def bucket_of(address: str) -> str:
    """Dovecot's `%3.1024Nu`: the first 8 bytes of MD5 as a big-endian number, modulo 1024, in hex."""
    value = int.from_bytes(hashlib.md5(address.encode()).digest()[:8], "big") % BUCKETS
    return f"{value:0{BUCKET_DIGITS}x}"


REMEMBERED_LINES = 10_000


class DovecotPasswdFiles:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._written: OrderedDict[str, str | None] = OrderedDict()
        """the line this process last wrote per address: an unchanged line costs no file access"""

    def path_of(self, address: str) -> Path:
        return self._root / bucket_of(address)

    async def grant(self, address: str, password_hash: str, quota_mb: int | None) -> None:
        extra = f"userdb_quota_rule=*:storage={quota_mb}M" if quota_mb else ""
        await self._ensure(address, f"{address}:{{ARGON2ID}}{password_hash}::::::{extra}")

    async def revoke(self, address: str) -> None:
        await self._ensure(address, None)

    async def _ensure(self, address: str, line: str | None) -> None:
        if address in self._written and self._written[address] == line:
            self._written.move_to_end(address)
            return
        await asyncio.to_thread(self._update, address, line)
        self._written[address] = line
        self._written.move_to_end(address)
        while len(self._written) > REMEMBERED_LINES:
            self._written.popitem(last=False)

    def _update(self, address: str, line: str | None) -> None:
        path = self.path_of(address)
        with open(path.with_name(f".{path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            lines = _read_lines(path)
            changed = dict(lines)
            if line is None:
                changed.pop(address, None)
            else:
                changed[address] = line
            if changed != lines:
                _replace(path, "".join(f"{changed[user]}\n" for user in sorted(changed)))


def _read_lines(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return {line.partition(":")[0]: line for line in text.splitlines() if line}


def _replace(path: Path, content: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        _step_mtime(Path(tmp), path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _step_mtime(tmp: Path, path: Path) -> None:
    """Dovecot re-reads a cached file only when its mtime (in whole seconds) or size changed;
    a new argon2 hash has the same size, so each rewrite moves mtime on by at least a second."""
    try:
        previous = int(path.stat().st_mtime)
    except FileNotFoundError:
        return
    seconds = max(int(time.time()), previous + 1)
    os.utime(tmp, (seconds, seconds))
