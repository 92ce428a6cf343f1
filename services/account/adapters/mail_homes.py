"""Each account's home on the mail server (Maildir/ and its Sieve scripts): `<root>/<domain>/<local>+<id>`.

The id is new for every account created, so an address created again starts empty: it never
inherits the previous owner's mail or scripts. '+' cannot appear in an account's local part (it is
the subaddress delimiter), so the name splits back into address and id without ambiguity. An
account without an id (created before homes had one) lives at `<root>/<domain>/<local>`.
"""

import asyncio
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from services.account.application.ports import MailboxUsage

log = logging.getLogger(__name__)

HOME_ID_BYTES = 6
HOME_MODE = 0o2770
"""with the mail root's group (setgid: mailss-homes), which Dovecot and Pigeonhole copy to everything
they create inside: so this service, not the mail user, can remove the home later. Its sieve/ and
Maildir/ are made here too: Pigeonhole would make a missing sieve/ 0700, and Dovecot, finding no
Maildir/ at the first delivery, makes its quota count (maildirsize) 0600, out of the group's reach."""


def new_home_id() -> str:
    return secrets.token_hex(HOME_ID_BYTES)


@dataclass(frozen=True)
class MailHomes:
    root: Path

    def path_of(self, address: str, home: str) -> Path:
        local, _, domain = address.partition("@")
        path = self.root / domain / (f"{local}+{home}" if home else local)
        if path.parent.parent != self.root or not local or not domain:  # addresses are validated; this is a backstop
            raise ValueError(f"{address!r} has no home under {self.root}")
        return path

    async def make(self, address: str, home: str) -> None:
        """Idempotent: the home and its sieve/ folder, before Dovecot first needs them."""
        await asyncio.to_thread(_make_folders, self.path_of(address, home))

    async def usage(self, address: str, home: str) -> MailboxUsage | None:
        """Dovecot's own count for the quota (Maildir++ `maildirsize`: a limits line, then one line of
        bytes and messages per change, summed), which it keeps without a limit too. No file yet: no
        mail has come. None: the file is not ours to read (a home older than its Maildir/ made here)."""
        return await asyncio.to_thread(_maildir_usage, self.root, self.path_of(address, home))

    async def remove(self, address: str, home: str) -> None:
        """Idempotent: a home already gone (or never created: no mail arrived) is fine."""
        await asyncio.to_thread(_remove_tree, self.path_of(address, home))

    @staticmethod
    def address_of(home: Path) -> str:
        return f"{home.name.partition('+')[0]}@{home.parent.name}"

    def homes(self) -> Iterator[Path]:
        """Every home on disk now (any folder two levels below the root)."""
        if not self.root.is_dir():
            return
        for domain in self.root.iterdir():
            if domain.is_dir() and not domain.is_symlink():
                yield from (home for home in domain.iterdir() if home.is_dir() and not home.is_symlink())


LiveHomes = Callable[[], Awaitable[tuple[set[str], set[Path]]]]
"""every address the database knows (accounts and tombstones), and the homes in use (one scan)"""


@dataclass
class OrphanHomeSweeper:
    """Removes homes that belong to no account once untouched for `grace_s`: mail a session still
    open wrote after its account was deleted, a home whose removal failed, the home of an earlier
    account at the same address. The grace covers a home Dovecot creates for an account made after
    the scan of the database. Homes of addresses the database has never known are left alone, as
    their passwd lines are (another deployment on a shared Dovecot, a restore older than the files)."""

    homes: MailHomes
    live: LiveHomes
    interval_s: float
    grace_s: float

    async def run(self) -> None:
        while True:
            try:
                await self.sweep(now=time.time())
            except Exception:
                log.exception("orphan home sweep failed; the next round tries again")
            await asyncio.sleep(self.interval_s)

    async def sweep(self, *, now: float) -> list[Path]:
        known, live = await self.live()  # before listing: a home made after the scan is young, kept by the grace
        orphans = await asyncio.to_thread(self._orphans, known, live, now)
        for home in orphans:
            await asyncio.to_thread(_remove_tree, home)
            log.info("removed orphan mail home %s", home)
        return orphans

    def _orphans(self, known: set[str], live: set[Path], now: float) -> list[Path]:
        return [home for home in self.homes.homes()
                if home not in live and self.homes.address_of(home) in known and now - _last_change(home) > self.grace_s]


def _last_change(home: Path) -> float:
    try:
        return home.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


MAILDIRSIZE_BYTES = 64 * 1024
"""read of the count at most (Dovecot rewrites it once it passes 5,120 bytes)"""
_COUNT_LINE = re.compile(r"(-?\d{1,19}) (-?\d{1,19})")


def _maildir_usage(root: Path, home: Path) -> MailboxUsage | None:
    """The mail user may write in the home: no link is followed, only a regular file is read, and
    at most MAILDIRSIZE_BYTES of it (a FIFO or a link to /dev/zero could hang or flood a shard)."""
    try:
        text = _read_beneath(root, [*home.relative_to(root).parts, "Maildir", "maildirsize"])
    except FileNotFoundError:
        return MailboxUsage()
    except OSError:  # not ours to read (a home from before Maildir/ was made here: the file is 0600), or a trap
        return None
    size = count = 0
    for line in text.splitlines()[1:]:
        if found := _COUNT_LINE.fullmatch(line.strip()):
            size, count = size + int(found[1]), count + int(found[2])
    return MailboxUsage(bytes=max(size, 0), messages=max(count, 0))


def _read_beneath(root: Path, parts: list[str]) -> str:
    """The file at root/parts, each level opened without following a link; ENOENT when a level is
    missing, another OSError for anything that is not a folder or a regular file."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        file = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        if not stat.S_ISREG(os.fstat(file).st_mode):
            raise OSError(f"{parts[-1]} is not a regular file")
        return os.read(file, MAILDIRSIZE_BYTES).decode("ascii", "replace")
    finally:
        os.close(file)


def _make_folders(home: Path) -> None:
    for folder in (home.parent, home, home / "sieve", home / "Maildir"):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        folder.chmod(HOME_MODE)  # mkdir's mode passes through the umask


def _remove_tree(path: Path) -> None:
    def gone_already(function: object, name: str, error: tuple[type[BaseException], BaseException, object]) -> None:
        if isinstance(error[1], FileNotFoundError):
            return
        if isinstance(error[1], PermissionError) and function in (os.open, os.scandir):
            # Dovecot makes a few lock folders 0700 whatever the home's group (.dovecot.lda-dupes.locks):
            # out of reach, but empty while no delivery runs, and an empty folder goes with its parent's leave.
            try:
                os.rmdir(name)
                return
            except OSError:
                pass
        raise error[1]

    if path.exists():
        shutil.rmtree(path, onerror=gone_already)
