"""Postfix's forwarding map: each forwarding address (a local part in the forwarding domain) ->
its destinations, in an LMDB table that Postfix reads per message (virtual_alias_maps).

Written with Postfix's own `postmap` (`-i` adds or replaces, `-d -` removes). Postfix's LMDB tables
use no LMDB locking: every transaction must hold an fcntl lock on the file (lmdb_table(5)), and
Debian 12's `postmap` takes one for `-d`, `-q` and `-s` but none for `-i` (strace; 12 concurrent
writers lost and resurrected entries, then corrupted the table). So `-i` runs under an exclusive
fcntl lock taken here, and, as fcntl locks do not exclude threads of one process, under a thread
lock per table too. A forwarding
address never changes meaning (the rules make a new one for every new set of destinations), so
writing one twice, or late, is harmless."""

import asyncio
import fcntl
import os
import subprocess
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_IN_PROCESS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
"""per table file: fcntl locks are per process"""


class MapUnavailable(ConnectionError):
    """postmap failed (table missing, disk full, ...): try again later."""


@dataclass(frozen=True)
class ForwardMap:
    table: str
    """e.g. lmdb:/srv/postfix/maps/forwards"""
    config_dir: str
    domain: str

    async def put(self, entries: Mapping[str, Sequence[str]]) -> None:
        if entries:
            lines = "".join(f"{key}@{self.domain} {', '.join(destinations)}\n" for key, destinations in entries.items())
            await self._postmap(["-i", "-r"], lines)  # -r: a retry rewrites what is there, silently

    async def remove(self, keys: Iterable[str]) -> None:
        lines = "".join(f"{key}@{self.domain}\n" for key in keys)
        if lines:
            await self._postmap(["-d", "-"], lines, none_found_is_fine=True)

    async def lookup(self, key: str) -> list[str] | None:
        """The destinations of one forwarding address (tests, diagnostics)."""
        done = await asyncio.to_thread(self._run, ["-q", f"{key}@{self.domain}"], "")
        if done.returncode == 0:
            return [d.strip() for d in done.stdout.split(",")]
        if done.stderr:
            raise MapUnavailable(f"postmap -q on {self.table}: {done.stderr.strip()[:300]}")
        return None

    async def _postmap(self, options: list[str], lines: str, *, none_found_is_fine: bool = False) -> None:
        run = self._run_locked if "-i" in options else self._run
        done = await asyncio.to_thread(run, options, lines)
        # `postmap -d` exits 1 when none of the keys was there (a retry after a crash): no error
        # message then; a real failure always says "fatal".
        if done.returncode != 0 and (not none_found_is_fine or "fatal" in done.stderr or done.returncode != 1):
            raise MapUnavailable(f"postmap {' '.join(options)} on {self.table}: {done.stderr.strip()[:300]}")

    def _run_locked(self, options: list[str], lines: str) -> subprocess.CompletedProcess[str]:
        path = self.table.partition(":")[2] + ".lmdb"
        with _IN_PROCESS[path]:
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError as error:
                raise MapUnavailable(f"forwarding map {path}: {error}") from None
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
                return self._run(options, lines)
            finally:
                os.close(fd)

    def _run(self, options: list[str], lines: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(["postmap", "-c", self.config_dir, *options, self.table], input=lines,
                                  capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            raise MapUnavailable(f"postmap: {error}") from None
