"""Postfix asks the account service which domains are hosted and which addresses exist (Postfix's
socketmap protocol: netstrings "<map> <key>" answered "OK <value>", "NOTFOUND " or "TEMP <why>"), so
the mail server never keeps a second, hand-made list.

- `domains`: the domains some admin administers (an account can only be created by one).
- `recipients`: live accounts; `name+tag@domain` is `name@domain` (subaddressing: no account has a
  `+`, and Postfix does not retry a socketmap without the extension, measured).
While the account service is down or the database does not answer, Postfix defers the mail (4xx):
it is retried, never refused or lost.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared.listening import listen_when_free
from shared.messaging.broker import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

MAX_REQUEST = 1024
DOMAINS_CACHE_S = 5.0

Domains = Callable[[], Awaitable[set[str]]]
IsAccount = Callable[[str], Awaitable[bool]]


class ProtocolError(Exception):
    pass


def without_extension(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"


async def read_netstring(reader: asyncio.StreamReader) -> str | None:
    """None at the end of the connection."""
    try:
        length = await reader.readuntil(b":")
    except asyncio.IncompleteReadError:
        return None
    if not length[:-1].isdigit() or int(length[:-1]) > MAX_REQUEST:
        raise ProtocolError("bad netstring length")
    data = await reader.readexactly(int(length[:-1]) + 1)
    if data[-1:] != b",":
        raise ProtocolError("netstring without its comma")
    return data[:-1].decode("utf-8", "replace")


def netstring(text: str) -> bytes:
    data = text.encode()
    return b"%d:%s," % (len(data), data)


@dataclass
class PostfixMaps:
    hosted_domains: Domains
    is_account: IsAccount
    host: str
    port: int
    _domains: tuple[float, set[str]] = field(default=(0.0, set()))

    async def run(self) -> None:
        server: asyncio.Server | None = None

        async def start() -> None:
            nonlocal server
            server = await asyncio.start_server(self._serve, self.host, self.port)

        await listen_when_free(start, what="Postfix's lookups (socketmap)", host=self.host, port=self.port)
        assert server is not None
        async with server:
            await server.serve_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await read_netstring(reader)) is not None:
                writer.write(netstring(await self.answer(request)))
                await writer.drain()
        except (ProtocolError, ConnectionError, asyncio.LimitOverrunError) as error:
            log.warning("socketmap connection dropped: %s", error)
        finally:
            writer.close()

    async def answer(self, request: str) -> str:
        name, _, key = request.partition(" ")
        key = key.strip().lower()
        try:
            if name == "domains":
                return "OK hosted" if key in await self._hosted() else "NOTFOUND "
            if name == "recipients":
                return "OK mailbox" if "@" in key and await self.is_account(without_extension(key)) else "NOTFOUND "
        except TRANSIENT_ERRORS as error:
            return f"TEMP {type(error).__name__}"
        return f"PERM unknown map {name[:40]!r}"

    async def _hosted(self) -> set[str]:
        fetched_at, domains = self._domains
        if time.monotonic() - fetched_at > DOMAINS_CACHE_S:
            domains = await self.hosted_domains()
            self._domains = (time.monotonic(), domains)
        return domains
