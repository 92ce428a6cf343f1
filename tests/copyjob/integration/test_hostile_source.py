"""A hostile or broken copy source (tests/hostile_imap.py) cannot touch the user's mail, exhaust a
worker or pin the workers: flags that are no flags are dropped and counted, every answer has a
ceiling, a folder that cannot be stored or opened is renamed safely or left out and listed, and a
source that stalls fails its job with a reason while other jobs go on. The limits are the tests'
(tests/conftest.py COPY_LIMITS)."""

import asyncio
import contextlib
from collections import Counter

from services.copyjob.domain.folders import decode_mutf7
from shared.contracts.copyjob import SERVICE, CopyFolder
from tests.conftest import COPY_LIMITS
from tests.copyjob.integration.test_copy_service import _finished, _start, _user
from tests.hostile_imap import Connection, Folder, HostileImap, Message, stall
from tests.support import eventually, holds, ours_session


class _NoSource:
    """Only for _user(): these sources take any login."""

    async def add_user(self, address: str, password: str) -> None:
        return None


def _messages(count: int, size: int = 100, **fields) -> list[Message]:
    return [Message(b"Subject: m%d\r\nMessage-ID: <%d@hostile>\r\n\r\n" % (n, n) + b"x" * size + b"\r\n", **fields)
            for n in range(count)]


async def _ours_now(address: str) -> dict[str, Counter]:
    """Per folder here: a multiset of (subject line, flags without \\Recent)."""
    session = await ours_session(address)
    found: dict[str, Counter] = {}
    try:
        for folder in [f for f in await session.folders() if f.selectable]:
            await session.select(folder.name, raw=True, readonly=True)
            summaries = await session.summaries()
            bodies = await session.bodies([s.uid for s in summaries], sum(s.size for s in summaries)) if summaries else {}
            found[decode_mutf7(folder.name)] = Counter((bodies[s.uid].split(b"\r\n", 1)[0].decode(), frozenset(s.flags) - {"\\Recent"})
                                         for s in summaries)
    finally:
        await session.close()
    return found


async def _copy(client, admin_token, server: HostileImap, timeout: float = 60) -> tuple[str, dict]:
    address, token = await _user(client, admin_token, _NoSource())
    replies = []

    async def started() -> bool:  # the copy job service hears of a new account by its event, a moment later
        replies.append(await client.request(SERVICE, _start(token, address, server.port)))
        return replies[-1].status == "accepted" or replies[-1].code != "not_found"

    await eventually(started, what="the copy job service to know the account")
    assert replies[-1].status == "accepted", replies[-1]
    return address, await _finished(client, token, address, replies[-1].result["job_id"], timeout=timeout)


async def test_flags_that_are_no_flags_cannot_inject_commands_and_are_counted(client, admin_token, copyjob_service):
    """A source answering `FLAGS (\\Seen {1+})` with a body of `x1 DELETE Archive` deletes nothing."""
    hostile = [Message(b"x1 DELETE Archive\r\n", flags="\\Seen {1+}"),
               Message(b"Subject: q\r\n\r\nx2 DELETE Sent\r\n", flags='\\Flagged a"b $Ok'),
               Message(b"Subject: r\r\n\r\nplain\r\n", flags="\\Answered \\Recent ( {0} \\Nope")]
    async with HostileImap({"INBOX": Folder(hostile)}) as server:
        address, job = await _copy(client, admin_token, server)

    assert job["state"] == "completed", job
    assert job["totals"]["copied"] == 3 and job["totals"]["flags_dropped"] >= 4, job["totals"]
    ours = await _ours_now(address)
    assert {"Archive", "Sent", "Drafts", "Junk", "Trash"} <= set(ours)
    assert ours["INBOX"] == Counter({("x1 DELETE Archive", frozenset({"\\Seen"})): 1,
                                     ("Subject: q", frozenset({"\\Flagged", "$Ok"})): 1,
                                     ("Subject: r", frozenset({"\\Answered"})): 1})


async def test_a_message_our_server_will_not_store_is_left_out_and_named_and_the_folder_goes_on(
        client, admin_token, copyjob_service):
    """Dovecot refuses an empty message: the batch it came in is stored one by one (MULTIAPPEND is all
    or none), the rest of the folder is copied, and the result names what was left out."""
    messages = _messages(3)
    messages.insert(1, Message(b""))
    async with HostileImap({"INBOX": Folder(messages), "Work": Folder(_messages(2))}) as server:
        address, job = await _copy(client, admin_token, server)

    assert job["state"] == "completed", job
    assert (job["totals"]["copied"], job["totals"]["skipped_refused"]) == (5, 1), job["totals"]
    [inbox] = [f for f in job["folders"] if f["name"] == "INBOX"]
    assert inbox["state"] == "done" and inbox["refused"] == ["INBOX#2 (Can't save a zero byte message.)"], inbox
    ours = await _ours_now(address)
    assert sum(ours["INBOX"].values()) == 3 and sum(ours["Work"].values()) == 2


async def test_folder_names_keep_their_own_form_or_get_a_safe_one_and_a_refused_folder_is_left_out(
        client, admin_token, copyjob_service):
    folders = {"INBOX": Folder(_messages(1)), "a.b": Folder(_messages(2)), "v1.2": Folder(_messages(1)),
               "x//y": Folder(_messages(1)), "&Jjo": Folder(_messages(1)), "Locked": Folder(_messages(1))}

    async def examine(connection: Connection, tag: str, args: list[str]) -> None:
        if args[0] == "Locked":
            return await connection.say(f"{tag} NO [NOPERM] not yours")
        await connection._examine(tag, args)

    async with HostileImap(folders).on("EXAMINE", examine) as server:
        address, job = await _copy(client, admin_token, server)

    assert job["state"] == "completed", job
    shown = {f["name"]: f for f in job["folders"]}
    assert {shown[name]["state"] for name in ("INBOX", "a.b", "v1.2")} == {"done"}
    renamed = {f["source"]: f["name"] for f in job["folders"] if f["renamed"]}
    assert set(renamed) == {"x//y", "&Jjo"} and job["totals"]["renamed_folders"] == 2
    assert shown["Locked"]["state"] == "skipped" and shown["Locked"]["skipped"] == "refused_at_source"
    ours = await _ours_now(address)
    assert sum(ours["a.b"].values()) == 2 and sum(ours["v1.2"].values()) == 1
    assert all(sum(ours[name].values()) == 1 for name in renamed.values())
    assert "Locked" in ours and not ours["Locked"]  # made at the plan, nothing copied

    async with HostileImap(folders).on("EXAMINE", examine) as server:
        _, again = await _copy_again(client, address, server)
    assert {f["source"]: f["name"] for f in again["folders"] if f["renamed"]} == renamed  # the same names
    assert again["totals"]["copied"] == 0


async def _copy_again(client, address: str, server: HostileImap) -> tuple[str, dict]:
    from shared.contracts.account import SERVICE as ACCOUNT
    from shared.contracts.account import Login
    from tests.copyjob.integration.test_copy_service import PASSWORD

    token = (await client.request(ACCOUNT, Login(login=address, password=PASSWORD))).result["token"]
    reply = await client.request(SERVICE, _start(token, address, server.port))
    assert reply.status == "accepted", reply
    return address, await _finished(client, token, address, reply.result["job_id"])


async def test_a_name_sent_as_a_literal_is_left_out_and_listed(client, admin_token, copyjob_service):
    async def listing(connection: Connection, tag: str, args: list[str]) -> None:
        await connection.say('* LIST () "/" "INBOX"', b'* LIST () "/" {9}\r\nbad\r\nname', f"{tag} OK done")

    async with HostileImap({"INBOX": Folder(_messages(2))}).on("LIST", listing).on("LSUB", listing) as server:
        _, job = await _copy(client, admin_token, server)

    assert job["state"] == "completed", job
    left_out = [f for f in job["folders"] if f["state"] == "skipped"]
    assert [f["source"] for f in left_out] == ["bad\r\nname"] and job["totals"]["copied"] == 2


async def _flooding_list(connection: Connection, tag: str, args: list[str]) -> None:
    for n in range(10**7):
        connection.writer.write(b'* LIST () "/" "folder-%09d"\r\n' % n)
        if n % 1000 == 0:
            await connection.writer.drain()


async def _endless_line(connection: Connection, tag: str, args: list[str]) -> None:
    connection.writer.write(b"* LIST () \"/\" \"")
    for _ in range(10**5):
        connection.writer.write(b"x" * 65536)
        await connection.writer.drain()


async def _huge_literal(connection: Connection, tag: str, args: list[str]) -> None:
    """Summaries honest, the body a literal of a terabyte (it sends a few MB of it, then waits)."""
    if "BODY.PEEK[]" not in " ".join(args).upper():
        return await connection._uid_fetch(tag, args)
    connection.writer.write(b"* 1 FETCH (UID 1 BODY[] {1000000000000}\r\n")
    for _ in range(200):
        connection.writer.write(b"y" * 65536)
        await connection.writer.drain()
    await stall(connection, tag, args)


async def _lying_size(connection: Connection, tag: str, args: list[str]) -> None:
    """Says each message has 100 bytes and sends 5 MB literals."""
    if "BODY.PEEK[]" not in " ".join(args).upper():
        return await connection._uid_fetch(tag, args)
    for uid in (1, 2, 3):
        connection.writer.write(b"* %d FETCH (UID %d BODY[] {5000000}\r\n" % (uid, uid) + b"z" * 5_000_000 + b")\r\n")
        await connection.writer.drain()
    await connection.say(f"{tag} OK done")


async def test_answers_beyond_a_ceiling_end_the_job_and_never_the_worker(client, admin_token, copyjob_service):
    """An endless LIST, a line without end, a literal of a terabyte and sizes that lie: each job fails
    with source_protocol in seconds, and the worker copies the next job exactly."""
    cases = [("LIST", _flooding_list), ("LIST", _endless_line), ("UID FETCH", _huge_literal), ("UID FETCH", _lying_size)]
    for command, handler in cases:
        async with HostileImap({"INBOX": Folder(_messages(3))}).on(command, handler) as server:
            _, job = await _copy(client, admin_token, server)
        assert (job["state"], job["reason"]) == ("failed", "source_protocol"), (handler.__name__, job)

    async with HostileImap({"INBOX": Folder(_messages(5))}) as server:
        address, job = await _copy(client, admin_token, server)
    assert job["state"] == "completed" and sum((await _ours_now(address))["INBOX"].values()) == 5


async def test_too_many_folders_and_the_job_byte_limit_end_the_job_naming_the_limit(client, admin_token, copyjob_service,
                                                                                   events):
    too_many = {"INBOX": Folder(), **{f"f{n}": Folder() for n in range(int(COPY_LIMITS["MAX_FOLDERS"]) + 1)}}
    async with HostileImap(too_many) as server:
        _, job = await _copy(client, admin_token, server)
    assert (job["state"], job["reason"], job["limit"]) == ("failed", "too_many_folders", int(COPY_LIMITS["MAX_FOLDERS"]))

    limit = int(COPY_LIMITS["JOB_MAX_BYTES"])
    big = {"INBOX": Folder(_messages(25, size=900_000)), "More": Folder(_messages(25, size=900_000))}
    async with HostileImap(big) as server:
        address, job = await _copy(client, admin_token, server)
    assert (job["state"], job["reason"], job["limit"]) == ("failed", "byte_limit", limit), job
    copied = job["totals"]["copied_bytes"]
    assert limit <= copied <= limit + 2 * 1_000_000, copied  # one message over, at most, per folder under way
    failed = [e for e in events.of_type("JobFailed", address=address)]
    assert failed and failed[-1]["reason"] == "byte_limit" and failed[-1]["limit"] == limit


async def test_sources_that_stall_fail_their_jobs_and_the_next_job_still_copies(client, admin_token, copyjob_service):
    """As many stalling jobs as there are copy slots, plus one, hold the copy steps: each fails
    source_stalled after its bounded tries, and a good job started behind them completes."""
    slots = CopyFolder.CONCURRENCY or 1  # per process; these tests run one copy job process (copyjob_service)
    stalling = [HostileImap({"INBOX": Folder(_messages(3))}).on("UID FETCH", stall) for _ in range(slots + 1)]
    async with contextlib.AsyncExitStack() as stack:
        for server in stalling:
            await stack.enter_async_context(server)
        started = [asyncio.ensure_future(_copy(client, admin_token, server, timeout=120)) for server in stalling]
        await eventually(lambda: holds(any("UID FETCH" in server.seen for server in stalling)), what="a step stalling")
        async with HostileImap({"INBOX": Folder(_messages(4))}) as good:
            address, done = await _copy(client, admin_token, good, timeout=120)
        stalled = await asyncio.gather(*started)

    assert [(job["state"], job["reason"]) for _, job in stalled] == [("failed", "source_stalled")] * len(stalling)
    assert done["state"] == "completed" and sum((await _ours_now(address))["INBOX"].values()) == 4


async def test_a_slow_sources_chunk_wraps_up_early_and_the_next_goes_on(client, admin_token, copyjob_service,
                                                                       copyjob_service_log):
    """A source so slow that a chunk would pass its step's deadline (the tests' 20 s; each batch of
    bodies takes 8 s here): the chunk ends after the batch in hand and is recorded, the next chunk
    copies the rest, and the job completes exactly, never failed as stalled."""
    async def slow_bodies(connection: Connection, tag: str, args: list[str]) -> None:
        if "BODY.PEEK[]" not in " ".join(args).upper():
            return await connection._uid_fetch(tag, args)
        writer, connection.writer = connection.writer, _Held()  # type: ignore[assignment]
        await connection._uid_fetch(tag, args)
        answer, connection.writer = bytes(connection.writer.data), writer  # type: ignore[attr-defined]
        step = len(answer) // 16 + 1
        for start in range(0, len(answer), step):  # never standing still for long, just slow
            writer.write(answer[start:start + step])
            await writer.drain()
            await asyncio.sleep(0.5)

    async with HostileImap({"INBOX": Folder(_messages(40, size=900_000))}).on("UID FETCH", slow_bodies) as server:
        address, job = await _copy(client, admin_token, server, timeout=120)

    assert job["state"] == "completed", job
    assert job["totals"]["copied"] == 40 and sum((await _ours_now(address))["INBOX"].values()) == 40
    assert "wrapped up after" in copyjob_service_log()


class _Held:
    """A writer that keeps what is written (to send it later, slowly)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None
