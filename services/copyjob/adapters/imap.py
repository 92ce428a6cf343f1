"""IMAP sessions for the copy, on aioimaplib, extended where it falls short:

- its response parser recurses once per line (RecursionError on a large FETCH, its issue #118):
  `_Protocol` parses iteratively, the same way, and without formatting every byte for a debug line;
- it connects TLS to the host it is given: we connect to the checked address and verify the
  certificate against the name the user gave (`server_hostname`);
- it sends mailbox names as given: we quote them (and encode them in modified UTF-7);
- FETCH answers come back as raw lines: `_fetched` reads them into records;
- a lost connection left its pending command waiting forever: it now ends with BYE;
- it reads whatever a server sends: here a line, a literal and a whole answer have a ceiling, and a
  command whose answer stops moving ends (`source_stalled`) instead of holding a worker.
"""

import asyncio
import contextlib
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from aioimaplib import aioimaplib  # type: ignore[import-untyped]
from opentelemetry.trace import SpanKind

from services.copyjob.domain.checkpoints import Mailbox
from services.copyjob.domain.flags import kept_flags
from services.copyjob.domain.folders import SourceFolder, encode_mutf7
from services.copyjob.domain.identity import IDENTIFYING_FIELDS, Summary
from services.copyjob.domain.purge import uid_sets
from shared.telemetry import span


class ImapError(Exception):
    """A command failed; `category` is a FailureReason, `said` the server's own words (if it answered)."""

    def __init__(self, category: str, detail: str, limit: int | None = None, said: str = "", code: str = "") -> None:
        super().__init__(detail)
        self.category, self.limit, self.said, self.code = category, limit, said, code
        """`code`: the answer's response code (TRYCREATE, NOPERM, LIMIT…), when it had one"""


MAX_LINE_BYTES = 8 * 1024 * 1024
"""a line of an answer (a SEARCH of a million UIDs fits); a longer one is a server feeding us without end"""
ANSWER_BYTES = 64 * 1024 * 1024
"""what one command's answer may hold unless it says otherwise"""
UNASKED_BYTES = 1024 * 1024
"""what a server may send when no command of ours asks (its greeting, the login, an idle kept session)"""


class _Refused(Exception):
    pass


class _Fetch(aioimaplib.FetchCommand):  # type: ignore[misc]
    """aioimaplib's FETCH, whose `wait_data` (asked after every line) counted the parentheses of every
    line since the last `N FETCH (` again each time: quadratic (a 16,000-message summary blocked the
    loop for most of a minute, and so could 60 KB of a hostile server's `(` lines). Counted as the
    lines come, the same way (literals, kept as bytearrays, are not counted)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counted, self._open = 0, 0

    def wait_data(self) -> bool:
        lines = self._resp_lines
        for line in lines[self._counted:]:
            if isinstance(line, bytes):
                opened = line.count(b"(") - line.count(b")")
                self._open = opened if self.FETCH_MESSAGE_DATA_RE.match(line) else self._open + opened
        self._counted = len(lines)
        return self._open != 0


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    heard = 0.0
    """when the server last sent anything (monotonic)"""
    received = 0
    """bytes of the current command's answer (or since the last one)"""
    budget: int | None = UNASKED_BYTES
    max_literal = 2**63
    violation: str | None = None
    """why we hung up on the server: it sent more than any honest answer holds"""

    def data_received(self, d: bytes) -> None:
        """aioimaplib's, less its debug line, which formats every byte received (at any log level):
        most of a FETCH's CPU time; and within the ceilings."""
        self.heard, self.received = time.monotonic(), self.received + len(d)
        if self.violation is not None:
            return
        if self.budget is not None and self.received > self.budget:
            return self._hang_up(f"an answer of over {self.budget} bytes")
        try:
            pending: bytes = self.incomplete_line  # type: ignore[has-type]
            self._handle_responses(pending + d, self._handle_line, self.current_command)  # type: ignore[has-type]
            self.incomplete_line = b""
            self.current_command = None
        except aioimaplib.IncompleteRead as incomplete_read:
            self.current_command = incomplete_read.cmd
            self.incomplete_line = incomplete_read.data
        except _Refused as refused:
            self._hang_up(str(refused))

    def _untagged_response(self, line: bytes) -> Any:
        """aioimaplib's, which removed every `* ` in the line (a quoted folder name holding one came
        out as another name): only the leading one goes."""
        line = line[2:] if line.startswith(b"* ") else line
        if self.pending_sync_command is not None:
            self.pending_sync_command.append_to_resp(line)
            return self.pending_sync_command
        match = aioimaplib.message_data_re.match(line)
        name, text = (match.group(1), match.string) if match else (line.partition(b" ")[0], line.partition(b" ")[2])
        command = self.pending_async_commands.get(name.decode(errors="replace").upper())
        if command is not None:
            command.append_to_resp(text)
        elif (command := self.pending_async_commands.get("NOOP")) is not None:
            command.append_to_resp(line)
        return command

    async def fetch(self, message_set: str, message_parts: str, by_uid: bool = False, timeout: float | None = None) -> Any:
        return await self.execute(_Fetch(self.new_tag(), message_set, message_parts, prefix="UID" if by_uid else "",
                                         loop=self.loop, timeout=timeout))

    def _hang_up(self, why: str) -> None:
        self.violation = why
        self.incomplete_line, self.current_command = b"", None
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        """aioimaplib leaves pending commands waiting forever when the server goes: end them (BYE)."""
        super().connection_lost(exc)
        self.state = aioimaplib.LOGOUT
        for command in [self.pending_sync_command, *self.pending_async_commands.values()]:
            if command is not None and not command._event.is_set():
                command.close(b"connection lost", result="BYE")

    def _handle_responses(self, data: bytes, line_handler: Any, current_cmd: Any = None) -> None:
        while True:
            if not data:
                if self.pending_sync_command is not None:
                    self.pending_sync_command.flush()
                if current_cmd is not None and current_cmd.wait_data():
                    raise aioimaplib.IncompleteRead(current_cmd)
                return
            if current_cmd is not None and current_cmd.wait_literal_data():
                data = current_cmd.append_literal_data(data)
                if current_cmd.wait_literal_data():
                    raise aioimaplib.IncompleteRead(current_cmd)
            line, separator, data = data.partition(aioimaplib.CRLF)
            if not separator:
                if len(line) > MAX_LINE_BYTES:
                    raise _Refused(f"a line of over {MAX_LINE_BYTES} bytes")
                raise aioimaplib.IncompleteRead(current_cmd, line)
            cmd = line_handler(line, current_cmd)
            if begin_literal := aioimaplib.literal_data_re.match(line):
                if int(begin_literal.group("size")) > self.max_literal:
                    raise _Refused(f"a literal of {begin_literal.group('size')[:20]!r} bytes, over {self.max_literal}")
                if cmd is None:
                    cmd = aioimaplib.Command("NIL", "unused")
                cmd.begin_literal_data(int(begin_literal.group("size")))
                current_cmd = cmd
            elif cmd is not None and cmd.wait_data():
                current_cmd = cmd
            else:
                current_cmd = None


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]
    def __init__(self, address: str, port: int, *, tls: ssl.SSLContext | None, server_hostname: str | None,
                 timeout: float) -> None:
        self._tls, self._server_hostname = tls, server_hostname
        super().__init__(host=address, port=port, timeout=timeout)

    def create_client(self, host: str, port: int, loop: Any, conn_lost_cb: Any = None, ssl_context: Any = None) -> None:
        """`host` a path: a Unix socket (our Dovecot's for the services)."""
        local_loop = asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb)
        if host.startswith("/"):
            connecting = local_loop.create_unix_connection(lambda: self.protocol, host)
        elif self._tls:
            connecting = local_loop.create_connection(lambda: self.protocol, host, port, ssl=self._tls,
                                                      server_hostname=self._server_hostname)
        else:
            connecting = local_loop.create_connection(lambda: self.protocol, host, port)
        self._client_task = local_loop.create_task(connecting)


def quoted(name: str) -> str:
    """A name here (Unicode), for a command."""
    return quoted_raw(encode_mutf7(name))


def quoted_raw(name: str) -> str:
    """A name as the server spelled it (already modified UTF-7); one no quoted string can hold (a line
    break, a NUL, 8-bit: it came as a literal) is not sent back."""
    if not name.isascii() or any(ch in name for ch in "\r\n\0"):
        raise ImapError("refused_at_source", "a folder name no quoted string can hold")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_LIST = re.compile(rb'^\((?P<attrs>[^)]*)\) (?:"(?P<sep>[^"]*)"|NIL) (?P<name>.*)$')
_UID, _SIZE = re.compile(rb"\bUID (\d+)"), re.compile(rb"\bRFC822\.SIZE (\d+)")
_FLAGS, _DATE = re.compile(rb"\bFLAGS \(([^)]*)\)"), re.compile(rb'\bINTERNALDATE "([^"]+)"')
_UIDVALIDITY, _UIDNEXT = re.compile(rb"\bUIDVALIDITY (\d+)"), re.compile(rb"\bUIDNEXT (\d+)")
_EXISTS, _MESSAGES = re.compile(rb"^(\d+) EXISTS$"), re.compile(rb"\bMESSAGES (\d+)")
_PASSING = re.compile(rb"^\[(UNAVAILABLE|SERVERBUG|INUSE)\]")
_STATUS_AND_CODE = re.compile(r"^(?:(?:\S+ )?(?:OK|NO|BAD|BYE) )?(?:\[([A-Za-z0-9-]+)[^\]]*\] ?)?")
"""the start of an answer line: tag and status (when there), response code (when there, captured)"""
_TIMING = re.compile(r" \(\d+\.\d+ \+ [^)]*secs\)")
"""Dovecot's "(0.001 + 0.000 secs)" after its words"""


def _answer(line: bytes) -> tuple[str, str]:
    """An answer's response code (upper case, or "") and the server's words: without tag, status,
    code or Dovecot's timing; printable ASCII, at most 200 characters."""
    text = line.decode("ascii", "replace")
    start = _STATUS_AND_CODE.match(text)
    assert start is not None  # every part of the pattern is optional
    words = _TIMING.sub("", text[start.end():])
    return (start[1] or "").upper(), "".join(c for c in words if c.isprintable())[:200]
CLOSE_S = 5.0
LIST_BYTES = 4 * 1024 * 1024
"""a LIST or LSUB answer (some 20,000 folders)"""
SUMMARY_BYTES = 512 * 1024 * 1024
"""the summaries of a folder (a million messages' header fields)"""
SUMMARY_ITEMS = f"(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({IDENTIFYING_FIELDS})])"


@dataclass
class _Fetched:
    text: bytes
    literal: bytes


def _fetched(lines: list[Any]) -> Iterator[_Fetched]:
    """FETCH records from aioimaplib's lines: `N FETCH (... {size}`, the literal, `...)`."""
    record: _Fetched | None = None
    expect_literal = False
    for line in lines:
        if expect_literal:
            assert record is not None
            record.literal, expect_literal = bytes(line), False
        elif re.match(rb"^\d+ FETCH \(", bytes(line)):
            if record is not None:
                yield record
            record = _Fetched(bytes(line), b"")
            expect_literal = bool(aioimaplib.literal_data_re.match(bytes(line)))
        elif record is not None:
            record.text += b" " + bytes(line)
    if record is not None:
        yield record


def _epoch(internaldate: str) -> str:
    try:
        return str(int(datetime.strptime(internaldate.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()))
    except ValueError:
        raise ImapError("source_protocol", "an INTERNALDATE that is no date") from None


def summary_of(record: _Fetched) -> Summary:
    uid, size = _UID.search(record.text), _SIZE.search(record.text)
    flags, date = _FLAGS.search(record.text), _DATE.search(record.text)
    if not (uid and size and date):
        raise ImapError("source_protocol", "a FETCH answer without UID, size or date")
    header = b"\n".join(sorted(line.strip() for line in record.literal.replace(b"\r\n ", b" ").splitlines() if line.strip()))
    kept, dropped = kept_flags(flags[1].decode("latin-1").split() if flags else ())
    return Summary(uid=int(uid[1]), internaldate=_epoch(date[1].decode()), size=int(size[1]),
                   fields_digest=sha256(header).hexdigest()[:32], flags=kept, flags_dropped=dropped)


def _mailbox(text: bytes, messages: int) -> Mailbox:
    validity, uidnext = _UIDVALIDITY.search(text), _UIDNEXT.search(text)
    if not (validity and uidnext):
        raise ImapError("source_protocol", "a folder without UIDVALIDITY or UIDNEXT")
    return Mailbox(uidvalidity=int(validity[1]), uidnext=int(uidnext[1]), messages=messages)


async def _start_tls(client: _Client, context: ssl.SSLContext, server_hostname: str | None) -> None:
    """aioimaplib has no STARTTLS: ask for it, then upgrade the connection in place (the protocol
    object stays, its transport becomes the TLS one) and read the capabilities again (RFC 3501 6.2.1)."""
    protocol = client.protocol
    if "STARTTLS" not in protocol.capabilities:
        raise ImapError("source_tls_failed", "the source does not offer STARTTLS")
    response = await asyncio.wait_for(protocol.execute(aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)),
                                      client.timeout)
    if response.result != "OK":
        raise ImapError("source_tls_failed", "the source refused STARTTLS")
    protocol.transport = await asyncio.get_running_loop().start_tls(protocol.transport, protocol, context,
                                                                     server_hostname=server_hostname)
    await asyncio.wait_for(protocol.capability(), client.timeout)


@dataclass
class Session:
    client: _Client
    ours: bool = False
    """our own Dovecot: a lost or stalled connection is our trouble (ConnectionError, which the kit
    retries for as long as it takes), never the user's source failing"""

    @classmethod
    async def open(cls, address: str, port: int, *, tls: ssl.SSLContext | None, server_hostname: str | None,
                   user: str, password: str, timeout: float = 30.0, starttls: bool = False,
                   max_literal: int = 2**63) -> "Session":
        """`starttls`: connect in plain and upgrade with STARTTLS before the login (`tls` verifies).
        `timeout`: how long an answer may stand still; `max_literal`: the largest literal taken."""
        client = _Client(address, port, tls=None if starttls else tls, server_hostname=server_hostname, timeout=timeout)
        client.protocol.max_literal = max_literal
        try:
            await client.wait_hello_from_server()
            if starttls and tls is not None:
                await _start_tls(client, tls, server_hostname)
        except ssl.SSLError as error:
            raise ImapError("source_tls_failed", f"TLS: {error.reason or error}") from None
        except (TimeoutError, OSError) as error:
            raise ImapError("source_unreachable", f"connect: {type(error).__name__}") from None
        response = await client.login(user, password)
        if response.result != "OK":
            raise ImapError("source_login_refused", "login refused")
        return cls(client)

    @property
    def alive(self) -> bool:
        protocol = self.client.protocol
        return not (protocol.state == aioimaplib.LOGOUT or protocol.transport is None or protocol.transport.is_closing())

    async def close(self) -> None:
        """LOGOUT, unless the connection is gone already (a LOGOUT into it would wait out the timeout)
        or a command is still unanswered (then it is cut)."""
        if not self.alive:
            return
        protocol = self.client.protocol
        if protocol.pending_sync_command is not None or protocol.pending_async_commands:
            protocol.transport.abort()
            return
        with contextlib.suppress(OSError, TimeoutError, aioimaplib.Abort):
            await asyncio.wait_for(protocol.logout(), CLOSE_S)

    async def _call(self, command: Any, budget: int | None = ANSWER_BYTES) -> Any:
        """One command, its answer at most `budget` bytes; a connection gone (BYE, closed) is
        `connection_lost`, an answer that stands still for the session's timeout `source_stalled`
        (both tried again by the caller's step from what is already there), an answer beyond a
        ceiling `source_protocol`."""
        protocol = self.client.protocol
        protocol.received, protocol.budget = 0, budget
        task = asyncio.ensure_future(command)
        try:
            return await self._while_it_moves(task)
        except (aioimaplib.Abort, aioimaplib.CommandTimeout, OSError, TimeoutError) as error:
            raise self._refused() or self._lost("connection_lost", f"{type(error).__name__}") from None
        finally:
            protocol.received, protocol.budget = 0, UNASKED_BYTES
            if not task.done():
                task.cancel()

    async def _while_it_moves(self, task: "asyncio.Future[Any]") -> Any:
        protocol, idle = self.client.protocol, self.client.timeout
        moved = (protocol.heard, self._unsent())
        while True:
            done, _ = await asyncio.wait({task}, timeout=idle)
            if done:
                if refused := self._refused():
                    raise refused
                return task.result()
            if (protocol.heard, self._unsent()) == moved:
                protocol.transport.abort()
                raise self._lost("source_stalled", f"no answer for {idle:g} s")
            moved = (protocol.heard, self._unsent())

    def _lost(self, category: str, detail: str) -> Exception:
        return ConnectionError(f"our Dovecot: {category} ({detail})") if self.ours else ImapError(category, detail)

    def _unsent(self) -> int:
        transport = self.client.protocol.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def _refused(self) -> ImapError | None:
        violation = self.client.protocol.violation
        return ImapError("source_protocol", violation) if violation else None

    async def folders(self) -> list[SourceFolder]:
        return await self._listed("LIST")

    async def subscribed(self) -> set[str]:
        return {folder.name for folder in await self._listed("LSUB")}

    async def _listed(self, command: str) -> list[SourceFolder]:
        response = await self._call(self.client.protocol.simple_command(command, '""', '"*"'), LIST_BYTES)
        self._ok(response, command)
        found = []
        lines = [bytes(line) for line in response.lines[:-1]]
        for number, line in enumerate(lines):
            if (match := _LIST.match(line)) is None:
                continue
            name = match["name"].decode("latin-1")
            if aioimaplib.literal_data_re.match(line) and number + 1 < len(lines):
                name = lines[number + 1].decode("latin-1")  # the name came as a literal: the next "line"
            elif name.startswith('"'):
                name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            found.append(SourceFolder(name, match["sep"].decode("latin-1") if match["sep"] is not None else None,
                                      frozenset(match["attrs"].decode("latin-1").split())))
        return found

    async def create(self, name: str) -> None:
        response = await self._call(self.client.protocol.simple_command("CREATE", quoted(name)))
        if b"ALREADYEXISTS" not in b" ".join(bytes(x) for x in response.lines):
            self._ok(response, "CREATE", "refused_here")

    async def subscribe(self, name: str) -> None:
        self._ok(await self._call(self.client.protocol.simple_command("SUBSCRIBE", quoted(name))), "SUBSCRIBE")

    async def select(self, name: str, *, raw: bool = False, readonly: bool = False, refused: str = "source_protocol") -> Mailbox:
        """`refused`: the category of a NO (the folder cannot be opened)."""
        mailbox = quoted_raw(name) if raw else quoted(name)
        if readonly:
            response = await self._call(self.client.protocol.execute(
                aioimaplib.Command("EXAMINE", self.client.protocol.new_tag(), mailbox, loop=self.client.protocol.loop)))
        else:
            response = await self._call(self.client.protocol.select(mailbox))
        self._ok(response, "SELECT", refused)
        self.client.protocol.state = aioimaplib.SELECTED  # aioimaplib moves there on its own SELECT only
        text = b"\n".join(bytes(line) for line in response.lines)
        exists = next((int(m[1]) for line in response.lines if (m := _EXISTS.match(bytes(line)))), 0)
        return _mailbox(text, exists)

    async def status(self, name: str, *, raw: bool = False) -> Mailbox:
        mailbox = quoted_raw(name) if raw else quoted(name)
        response = await self._call(self.client.protocol.simple_command("STATUS", mailbox, "(MESSAGES UIDNEXT UIDVALIDITY)"))
        self._ok(response, "STATUS")
        text = b"\n".join(bytes(line) for line in response.lines)
        return _mailbox(text, int(found[1]) if (found := _MESSAGES.search(text)) else 0)

    async def uids(self, *criteria: str) -> list[int]:
        """UID SEARCH in the selected folder."""
        response = await self._call(self.client.protocol.search(*criteria, charset=None, by_uid=True))
        self._ok(response, "SEARCH")
        found: list[int] = []
        for line in response.lines[:-1]:  # aioimaplib hands over `* SEARCH 1 2 3` as `1 2 3`
            words = bytes(line).split()
            words = words[1:] if words[:1] == [b"SEARCH"] else words
            if words and all(word.isdigit() for word in words):
                found += [int(word) for word in words]
        return found

    async def expunge(self, uid_set: str) -> None:
        """Those messages of the selected folder gone for good (UIDPLUS: only those, whatever else
        is flagged \\Deleted)."""
        protocol = self.client.protocol
        self._ok(await self._call(protocol.store(uid_set, "+FLAGS.SILENT", "(\\Deleted)", by_uid=True)), "STORE")
        self._ok(await self._call(protocol.expunge(uid_set, by_uid=True)), "EXPUNGE")

    async def move(self, uid_set: str, folder: str) -> None:
        """MOVE (RFC 6851). Messages expunged meanwhile by another session (EXPUNGEISSUED) are not
        an error: they are gone from here, which is what a move wants."""
        response = await self._call(self.client.protocol.move(uid_set, quoted(folder), by_uid=True))
        if response.result != "OK" and b"EXPUNGEISSUED" not in bytes(response.lines[-1]):
            self._ok(response, "MOVE")

    async def delete(self, name: str) -> bool:
        """A folder (as the server spells it) removed, and unsubscribed; False when the server keeps it."""
        response = await self._call(self.client.protocol.simple_command("DELETE", quoted_raw(name)))
        if response.result != "OK":
            return False
        await self._call(self.client.protocol.simple_command("UNSUBSCRIBE", quoted_raw(name)))
        return True

    async def summaries(self, from_uid: int = 1) -> list[Summary]:
        """The selected folder's messages from that UID on (`n:*` also names the last message when
        it is below n: it is left out)."""
        response = await self._call(self.client.protocol.fetch(f"{from_uid}:*", SUMMARY_ITEMS, by_uid=True), SUMMARY_BYTES)
        self._ok(response, "FETCH")
        return [s for s in (summary_of(record) for record in _fetched(response.lines)) if s.uid >= from_uid]

    async def summaries_of(self, uids: list[int]) -> list[Summary]:
        """Those messages of the selected folder (in batches of 1,000 UIDs a command)."""
        found: list[Summary] = []
        for wanted, _ in uid_sets(uids, 1000):
            response = await self._call(self.client.protocol.fetch(wanted, SUMMARY_ITEMS, by_uid=True), SUMMARY_BYTES)
            self._ok(response, "FETCH")
            found += [summary_of(record) for record in _fetched(response.lines)]
        return found

    async def body(self, uid: int) -> bytes:
        response = await self._call(self.client.protocol.fetch(str(uid), "(UID BODY.PEEK[])", by_uid=True), None)
        self._ok(response, "FETCH")
        for record in _fetched(response.lines):
            if (found := _UID.search(record.text)) and int(found[1]) == uid:
                return record.literal
        raise ImapError("source_protocol", f"message {uid} has gone from the source")

    async def bodies(self, uids: list[int], announced: int) -> dict[int, bytes]:
        """Several messages in one FETCH (one round trip for the batch); `announced`: their sizes as
        the server gave them, which the answer may pass twice over and a MiB a message (some servers'
        RFC822.SIZE is only an estimate): a batch of 16 MB holds at most some 80 MB."""
        budget = 2 * announced + 1024 * 1024 * len(uids)
        response = await self._call(self.client.protocol.fetch(",".join(map(str, uids)), "(UID BODY.PEEK[])", by_uid=True),
                                    budget)
        self._ok(response, "FETCH")
        return {int(found[1]): record.literal for record in _fetched(response.lines) if (found := _UID.search(record.text))}

    async def append_many(self, folder: str, messages: list[tuple[bytes, tuple[str, ...], str]]) -> dict[int, str]:
        """`_append_many` in a span of its own: the batch's folder, size and what was refused."""
        with span("IMAP APPEND", kind=SpanKind.CLIENT, attributes={
                "mailss.folder": folder, "mailss.messages": len(messages),
                "mailss.bytes": sum(len(body) for body, _, _ in messages)}) as current:
            refused = await self._append_many(folder, messages)
            current.set_attribute("mailss.refused", len(refused))
            return refused

    async def _append_many(self, folder: str, messages: list[tuple[bytes, tuple[str, ...], str]]) -> dict[int, str]:
        """MULTIAPPEND (RFC 3502, all or none) with non-synchronizing literals (LITERAL+, RFC 7888):
        one round trip for the batch instead of two per message. Without it, or when the server
        refuses the batch (none of it stored) with no response code, one APPEND each. -> the
        messages it would not store (by position) with its words. A refusal with a code is the
        folder's (TRYCREATE, NOPERM, LIMIT…), a full mailbox or a lost connection the job's: raised."""
        capabilities = self.client.protocol.capabilities
        if "MULTIAPPEND" in capabilities and "LITERAL+" in capabilities:
            try:
                await self._multiappend(folder, messages)
                return {}
            except ImapError as error:
                if error.category != "refused_here" or error.code:
                    raise
                if len(messages) == 1:
                    return {0: error.said}
        refused: dict[int, str] = {}
        for position, (body, flags, date) in enumerate(messages):
            try:
                await self.append(folder, body, flags, date)
            except ImapError as error:
                if error.category != "refused_here" or error.code:
                    raise
                refused[position] = error.said
        return refused

    async def _multiappend(self, folder: str, messages: list[tuple[bytes, tuple[str, ...], str]]) -> None:
        protocol = self.client.protocol
        command = aioimaplib.Command("APPEND", protocol.new_tag(), loop=protocol.loop)
        parts = [f"{command.tag} APPEND {quoted(folder)}".encode()]
        for body, flags, date in messages:
            kept = " ".join(kept_flags(flags)[0])
            when = aioimaplib.time2internaldate(datetime.fromtimestamp(int(date), UTC))
            parts.append(f" ({kept}) {when} {{{len(body)}+}}\r\n".encode() + body)
        if protocol.pending_sync_command is not None:
            await protocol.pending_sync_command.wait()
        protocol.pending_sync_command = command
        protocol.transport.write(b"".join(parts) + aioimaplib.CRLF)
        await self._call(command.wait())
        self._appended(command.response)

    async def append(self, folder: str, message: bytes, flags: tuple[str, ...], internaldate: str) -> None:
        kept = " ".join(kept_flags(flags)[0])
        date = datetime.fromtimestamp(int(internaldate), UTC)
        response = await self._call(self.client.protocol.append(message, mailbox=quoted(folder), flags=f"({kept})", date=date))
        self._appended(response)

    def _appended(self, response: Any) -> None:
        if response.result == "OK":
            return
        if b"QUOTA" in b" ".join(bytes(x) for x in response.lines).upper():
            raise ImapError("quota_exceeded", "the mailbox is full")
        self._ok(response, "APPEND", "refused_here")

    def _ok(self, response: Any, what: str, refused: str = "source_protocol") -> None:
        """A NO is `refused` (unless the server says it is its own passing trouble), BYE a lost
        connection; on our own Dovecot both of those are ours to wait out (ConnectionError)."""
        if response.result == "OK":
            return
        category = {"NO": refused, "BYE": "connection_lost"}.get(response.result, "source_protocol")
        if category == refused and _PASSING.search(bytes(response.lines[-1])):
            category = "unavailable"  # the server's own trouble, for now: tried again
        detail = f"{what} failed: {bytes(response.lines[-1])[:200]!r}"
        if category in ("connection_lost", "unavailable"):
            raise self._lost(category, detail)
        code, said = _answer(bytes(response.lines[-1]))
        raise ImapError(category, detail, said=said, code=code)
