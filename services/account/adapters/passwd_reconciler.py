"""The mail server follows the database: a reconciler brings every passwd bucket in line with the
stored accounts — at start, periodically, and within seconds of a file write that failed.

Each bucket is compared under its lock, with the accounts it should hold read (by _id) while the
lock is held, so a command's own follow never races it into writing an older line. It runs beside
the command shards, never in them: a bucket that cannot be written (disk full, immutable) is tried
again every RETRY_S while the commands go on.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.account.adapters.dovecot_passwd import DovecotPasswdFiles, bucket_of
from services.account.application.ports import Principal
from services.account.domain.account import Account
from shared.messaging.broker import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

RETRY_S = 1.0


Principals = Callable[[], Awaitable[dict[str, Principal | None]]]
"""every account and admin the database knows, deleted ones as None (one scan)"""
Stored = Callable[[str], Awaitable[Principal | None]]
"""one account as stored now (by _id)"""
InLine = Callable[[set[str]], Awaitable[None]]
"""told the addresses whose failed write is now made good"""


@dataclass
class MailLoginReconciler:
    """Lines of addresses the database has never known are left alone (another deployment's
    accounts on a shared Dovecot, or a restore older than the files): reported, not removed."""

    files: DovecotPasswdFiles
    every: Principals
    stored: Stored
    interval_s: float
    in_line: InLine
    _due: dict[str, set[str]] = field(default_factory=dict)
    """bucket -> addresses whose write failed: tried every RETRY_S until the bucket can be written"""
    _last_scan: dict[str, set[str]] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def soon(self, address: str) -> None:
        """A write for `address` failed: bring its bucket in line as soon as it can be written."""
        self._due.setdefault(bucket_of(address), set()).add(address)
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time()
        while True:
            if loop.time() >= next_full:
                await self._guarded(self.reconcile_all)
                next_full = loop.time() + self.interval_s
            else:
                await self._guarded(self._reconcile_due)
            await self._pause(next_full - loop.time())

    async def _pause(self, until_full: float) -> None:
        self._wake.clear()
        timeout = min(RETRY_S, until_full) if self._due else until_full
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(timeout, 0))

    async def _guarded(self, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except TRANSIENT_ERRORS as error:  # the next round tries again
            log.warning("mail login reconcile postponed: %s", type(error).__name__)
        except Exception:
            log.exception("mail login reconcile failed")

    async def reconcile_all(self) -> None:
        """One scan of the database, one read of each bucket; only a bucket that disagrees is locked
        and reconciled address by address."""
        known = await self.every()
        self._last_scan = _by_bucket(known)
        for bucket, addresses in self._last_scan.items():
            marked = self._due.pop(bucket, set())
            if marked or not await self._agrees(bucket, addresses, known):
                await self._reconcile_or_retry(bucket, addresses, marked)

    async def _reconcile_due(self) -> None:
        """Only the due buckets, with the addresses of the last scan and those marked since: a stuck
        bucket costs no database scan a second."""
        for bucket in sorted(self._due):
            marked = self._due.pop(bucket, set())
            await self._reconcile_or_retry(bucket, self._last_scan.get(bucket, set()), marked)

    async def _agrees(self, bucket: str, addresses: set[str], known: dict[str, Principal | None]) -> bool:
        async with self.files.unlocked(bucket) as file:
            current = await file.read()
        return all(current.get(address) == _line(self.files, address, known[address]) for address in addresses)

    async def _reconcile_or_retry(self, bucket: str, addresses: set[str], marked: set[str]) -> None:
        """A mark taken out before the attempt goes back on failure; one made meanwhile stays."""
        try:
            await self.reconcile_bucket(bucket, addresses | marked)
        except OSError as error:
            log.warning("passwd bucket %s cannot be written (%s); trying again", bucket, error.strerror)
            self._due.setdefault(bucket, set()).update(marked)
            return
        if marked:
            await self.in_line(marked)

    async def reconcile_bucket(self, bucket: str, addresses: set[str]) -> bool:
        """Under the bucket's lock, each known address's line made what the database says now.
        True when the bucket had to be rewritten."""
        async with self.files.locked(bucket) as file:
            current = await file.read()
            wanted = dict(current)
            for address in addresses:
                line = _line(self.files, address, await self.stored(address))
                if line is None:
                    wanted.pop(address, None)
                else:
                    wanted[address] = line
            if wanted == current:
                return False
            await file.write(wanted)
            self.files.forget(addresses)
            log.info("passwd bucket %s brought in line with the database", bucket)
            return True


def _by_bucket(known: dict[str, Principal | None]) -> dict[str, set[str]]:
    by_bucket: dict[str, set[str]] = {}
    for key in known:
        if "@" in key:  # admins have no mail login
            by_bucket.setdefault(bucket_of(key), set()).add(key)
    return by_bucket


def _line(files: DovecotPasswdFiles, address: str, principal: Principal | None) -> str | None:
    if isinstance(principal, Account):
        return files.line_for(address, principal.password_hash, principal.quota_mb, principal.home)
    return None
