"""A scriptable IMAP server on loopback for tests: by default a small honest server (any login,
folders holding messages, LIST/LSUB/STATUS/EXAMINE/UID FETCH as the copy job asks them), and any
command's answer can be replaced by a test's own (`server.on("LIST", handler)`), to lie, stall, flood
or answer garbage. Plain IMAP only (the copy job's tests allow plain sources on loopback)."""

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

Handler = Callable[["Connection", str, list[str]], Awaitable[None]]
"""(the connection, the command's tag, its arguments as tokens, quotes removed)"""
_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|\(|\)|\[[^\]]*\]|[^\s()]+')


@dataclass
class Message:
    body: bytes
    flags: str = ""
    """as written into FLAGS (...): anything, so a test can send what no honest server would"""
    date: datetime = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class Folder:
    messages: list[Message] = field(default_factory=list)
    attributes: str = "\\HasNoChildren"
    uidvalidity: int = 7

    @property
    def uidnext(self) -> int:
        return len(self.messages) + 1


class Connection:
    def __init__(self, server: "HostileImap", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.selected: Folder | None = None

    async def say(self, *lines: bytes | str) -> None:
        for line in lines:
            self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")
        await self.writer.drain()

    async def serve(self) -> None:
        await self.say("* OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS] hostile ready")
        while line := await self.reader.readline():
            words = [m[1].decode().replace('\\"', '"').replace("\\\\", "\\") if m[1] is not None else m[0].decode()
                     for m in _TOKEN.finditer(line.rstrip(b"\r\n"))]
            if len(words) < 2:
                continue
            tag, name, args = words[0], words[1].upper(), words[2:]
            if name == "UID" and args:
                name, args = f"UID {args[0].upper()}", args[1:]
            self.server.seen.append(name)
            handler = self.server.handlers.get(name) or getattr(Connection, "_" + name.replace(" ", "_").lower(), None)
            if handler is None:
                await self.say(f"{tag} BAD unknown command")
            else:
                await handler(self, tag, args)
            if name == "LOGOUT":
                break

    async def _capability(self, tag: str, args: list[str]) -> None:
        await self.say("* CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS", f"{tag} OK done")

    async def _login(self, tag: str, args: list[str]) -> None:
        await self.say(f"{tag} OK logged in")

    async def _logout(self, tag: str, args: list[str]) -> None:
        await self.say("* BYE bye", f"{tag} OK done")

    async def _noop(self, tag: str, args: list[str]) -> None:
        await self.say(f"{tag} OK done")

    async def _list(self, tag: str, args: list[str]) -> None:
        sep = self.server.separator
        await self.say(*(f'* LIST ({f.attributes}) "{sep}" "{_quoted(name)}"' for name, f in self.server.folders.items()),
                       f"{tag} OK done")

    _lsub = _list

    async def _status(self, tag: str, args: list[str]) -> None:
        folder = self.server.folders.get(args[0])
        if folder is None:
            return await self.say(f"{tag} NO no such folder")
        await self.say(f'* STATUS "{_quoted(args[0])}" (MESSAGES {len(folder.messages)} UIDNEXT {folder.uidnext} '
                       f"UIDVALIDITY {folder.uidvalidity})", f"{tag} OK done")

    async def _examine(self, tag: str, args: list[str]) -> None:
        folder = self.selected = self.server.folders.get(args[0])
        if folder is None:
            return await self.say(f"{tag} NO no such folder")
        await self.say(f"* {len(folder.messages)} EXISTS", f"* OK [UIDVALIDITY {folder.uidvalidity}] ok",
                       f"* OK [UIDNEXT {folder.uidnext}] ok", f"{tag} OK [READ-ONLY] done")

    _select = _examine

    async def _uid_fetch(self, tag: str, args: list[str]) -> None:
        folder = self.selected
        if folder is None:
            return await self.say(f"{tag} BAD nothing selected")
        items = " ".join(args[1:]).upper()
        for uid in _uids(args[0], len(folder.messages)):
            message = folder.messages[uid - 1]
            if "BODY.PEEK[]" in items:
                self.writer.write(f"* {uid} FETCH (UID {uid} BODY[] {{{len(message.body)}}}\r\n".encode()
                                  + message.body + b")\r\n")
            else:
                head = _header_fields(message.body)
                when = message.date.strftime("%d-%b-%Y %H:%M:%S +0000")
                self.writer.write(f'* {uid} FETCH (UID {uid} FLAGS ({message.flags}) INTERNALDATE "{when}" '
                                  f"RFC822.SIZE {len(message.body)} BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)] "
                                  f"{{{len(head)}}}\r\n".encode() + head + b")\r\n")
        await self.say(f"{tag} OK done")


class HostileImap:
    def __init__(self, folders: dict[str, Folder] | None = None, separator: str = "/") -> None:
        self.folders = folders if folders is not None else {"INBOX": Folder()}
        self.separator = separator
        self.handlers: dict[str, Handler] = {}
        self.seen: list[str] = []
        """every command's name, as received"""
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def on(self, command: str, handler: Handler) -> "HostileImap":
        self.handlers[command.upper()] = handler
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> "HostileImap":
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._connections:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await Connection(self, reader, writer).serve()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()


async def stall(connection: Connection, tag: str, args: list[str]) -> None:
    """Says nothing, for ever (until the client hangs up)."""
    await connection.reader.read()


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _uids(uid_set: str, last: int) -> list[int]:
    found: list[int] = []
    for part in uid_set.split(","):
        low, _, high = part.partition(":")
        first = last if low == "*" else int(low)
        final = (last if high == "*" else int(high)) if high else first
        found += [uid for uid in range(min(first, final), max(first, final) + 1) if 1 <= uid <= last]
    return found


def _header_fields(body: bytes) -> bytes:
    head = body.split(b"\r\n\r\n", 1)[0]
    wanted = [line for line in head.split(b"\r\n") if line.split(b":", 1)[0].strip().upper() in
              (b"MESSAGE-ID", b"DATE", b"FROM", b"SUBJECT")]
    return b"".join(line + b"\r\n" for line in wanted) + b"\r\n"
