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
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from services.account.adapters.mail_homes import MailHomes
from shared.telemetry import span

BUCKETS = 1024
BUCKET_DIGITS = 3
FILE_MODE = 0o640


def bucket_of(address: str) -> str:
    """Dovecot's `%3.1024Nu`: the first 8 bytes of MD5 as a big-endian number, modulo 1024, in hex."""
    value = int.from_bytes(hashlib.md5(address.encode()).digest()[:8], "big") % BUCKETS
    return f"{value:0{BUCKET_DIGITS}x}"


REMEMBERED_LINES = 10_000


class DovecotPasswdFiles:
    def __init__(self, root: Path, homes: MailHomes) -> None:
        self._root = root
        self.homes = homes
        self._written: OrderedDict[str, tuple[str | None, FileState]] = OrderedDict()
        """the line this process last wrote per address, and how its bucket looked right after: while
        the bucket is untouched since (one stat), an unchanged line costs no read or write"""

    def path_of(self, address: str) -> Path:
        return self._root / bucket_of(address)

    async def grant(self, address: str, password_hash: str, quota_mb: int | None, home: str) -> None:
        line = self.line_for(address, password_hash, quota_mb, home)
        if self._written.get(address, (None,))[0] != line:  # a line not written yet: its home may be missing
            await self.homes.make(address, home)
        await self._ensure(address, line)

    def line_for(self, address: str, password_hash: str, quota_mb: int | None, home: str) -> str:
        """`user:password:uid:gid:gecos:home:shell:extra`; uid and gid come from the userdb's defaults."""
        extra = f"userdb_quota_rule=*:storage={quota_mb}M" if quota_mb else ""
        return f"{address}:{{ARGON2ID}}{password_hash}::::{self.homes.path_of(address, home)}::{extra}"

    async def revoke(self, address: str) -> None:
        await self._ensure(address, None)

    async def _ensure(self, address: str, line: str | None) -> None:
        path = self.path_of(address)
        if self._written.get(address) == (line, _state_of(path)):
            self._written.move_to_end(address)
            return
        with span("passwd write", attributes={"mailss.account": address, "mailss.bucket": path.name,
                                              "mailss.change": "revoke" if line is None else "grant"}):
            self._written[address] = (line, await asyncio.to_thread(self._update, address, line))
        self._written.move_to_end(address)
        while len(self._written) > REMEMBERED_LINES:
            self._written.popitem(last=False)

    def _update(self, address: str, line: str | None) -> "FileState":
        path = self.path_of(address)
        with _lock(path):
            lines = _read_lines(path)
            changed = dict(lines)
            if line is None:
                changed.pop(address, None)
            else:
                changed[address] = line
            if changed != lines:
                _replace(path, "".join(f"{changed[user]}\n" for user in sorted(changed)))
            return _state_of(path)


    def buckets(self) -> list[str]:
        """The bucket files that exist now."""
        return sorted(p.name for p in self._root.glob("[0-9a-f]" * BUCKET_DIGITS) if p.is_file())

    @asynccontextmanager
    async def locked(self, bucket: str) -> AsyncIterator["LockedBucket"]:
        """A bucket no other writer (instance, shard, the follow of a command) touches meanwhile."""
        path = self._root / bucket
        lock = await asyncio.to_thread(_lock, path)
        try:
            yield LockedBucket(path, self)
        finally:
            await asyncio.to_thread(lock.close)

    @asynccontextmanager
    async def unlocked(self, bucket: str) -> AsyncIterator["LockedBucket"]:
        """For a look only: what it reads may change at once."""
        yield LockedBucket(self._root / bucket, self)

    def forget(self, addresses: Iterable[str]) -> None:
        for address in addresses:
            self._written.pop(address, None)


@dataclass(frozen=True)
class LockedBucket:
    path: Path
    files: DovecotPasswdFiles

    async def read(self) -> dict[str, str]:
        return await asyncio.to_thread(_read_lines, self.path)

    async def write(self, lines: dict[str, str]) -> None:
        with span("passwd write", attributes={"mailss.bucket": self.path.name, "mailss.lines": len(lines)}):
            await asyncio.to_thread(_replace, self.path, "".join(f"{lines[user]}\n" for user in sorted(lines)))


FileState = tuple[int, int, int] | None
"""inode, mtime in ns and size of a bucket file (None: no file): any writer changes at least one"""


def _state_of(path: Path) -> FileState:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _lock(path: Path) -> TextIO:
    """Read-only is enough for flock: a lock file another user made (an operator's run as root) still serves."""
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDONLY | os.O_CREAT, 0o640)
    lock = os.fdopen(fd)
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


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
