"""Postfix's forwarding map: each forwarding address (a local part in the forwarding domain) ->
its destinations, in an LMDB table that Postfix reads per message (virtual_alias_maps).

Written with Postfix's own `postmap` (`-i` adds or replaces, `-d -` removes), which takes the
table's lock, so several rules workers and Postfix's readers share it safely. A forwarding address
never changes meaning (the rules make a new one for every new set of destinations), so writing one
twice, or late, is harmless."""

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


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
            await self._postmap(["-i"], lines)

    async def remove(self, keys: Iterable[str]) -> None:
        lines = "".join(f"{key}@{self.domain}\n" for key in keys)
        if lines:
            await self._postmap(["-d", "-"], lines, none_found_is_fine=True)

    async def lookup(self, key: str) -> list[str] | None:
        """The destinations of one forwarding address (tests, diagnostics)."""
        done = await asyncio.create_subprocess_exec(
            "postmap", "-c", self.config_dir, "-q", f"{key}@{self.domain}", self.table,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await done.communicate()
        if done.returncode == 0:
            return [d.strip() for d in out.decode().split(",")]
        if err:
            raise MapUnavailable(f"postmap -q on {self.table}: {err.decode().strip()[:300]}")
        return None

    async def _postmap(self, options: list[str], lines: str, *, none_found_is_fine: bool = False) -> None:
        try:
            done = await asyncio.create_subprocess_exec(
                "postmap", "-c", self.config_dir, *options, self.table,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as error:
            raise MapUnavailable(f"postmap: {error}") from None
        _, err = await done.communicate(lines.encode())
        # `postmap -d` exits 1 when none of the keys was there (a retry after a crash): no error
        # message then; a real failure always says "fatal".
        if done.returncode != 0 and (not none_found_is_fine or b"fatal" in err or done.returncode != 1):
            raise MapUnavailable(f"postmap {' '.join(options)} on {self.table}: {err.decode().strip()[:300]}")
