"""The IMAP adapter against the real Dovecot: folders with their names and special uses, message
summaries that survive a copy, bodies byte for byte, APPEND with flags, keywords and date, and a
FETCH answer far larger than aioimaplib's recursive parser survives."""

import asyncio
import os

import pytest

from services.copyjob.adapters.imap import ImapError, Session
from services.copyjob.domain.folders import our_name
from services.copyjob.domain.identity import missing
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount
from tests.support import deliver, eventually, imap_login, new_address

PASSWORD = "Strong-Passw0rd!"


async def _account(client, admin_token) -> str:
    address = new_address()
    reply = await client.request(ACCOUNT, CreateAccount(actor_token=admin_token, address=address, plan="kwc",
                                                        initial_password=PASSWORD))
    assert reply.status == "accepted", reply
    await eventually(lambda: imap_login(address, PASSWORD), what="the account's IMAP login")
    return address


async def _open(address: str) -> Session:
    return await Session.open("127.0.0.1", int(os.environ.get("DOVECOT_IMAP_PORT", "10143")), tls=None,
                              server_hostname=None, user=address, password=PASSWORD)


async def test_folders_summaries_bodies_and_append_round_trip(client, admin_token):
    source_address, target_address = await _account(client, admin_token), await _account(client, admin_token)
    for n in range(3):
        assert await asyncio.to_thread(deliver, source_address, subject=f"m{n}", sender="a@example.net")
    source, target = await _open(source_address), await _open(target_address)
    try:
        await source.create("日本語/下書き & more")
        folders = {f.name: f for f in await source.folders()}
        assert {"INBOX", "Sent", "Drafts", "Junk", "Trash", "Archive"} <= {our_name(f) for f in folders.values()}
        assert "日本語/下書き & more" in {our_name(f) for f in folders.values()}
        assert our_name(next(f for f in folders.values() if "\\Sent" in f.attributes)) == "Sent"

        await source.select("INBOX", readonly=True)
        summaries = await source.summaries()
        assert len(summaries) == 3 and all(s.size > 0 for s in summaries)
        body = await source.body(summaries[0].uid)
        await target.create("Copied")
        await target.append("Copied", body, ("\\Seen", "\\Recent", "$Important"), summaries[0].internaldate)
        await target.select("Copied")
        [copied] = await target.summaries()
        assert copied.key == summaries[0].key
        assert set(copied.flags) >= {"\\Seen", "$Important"}
        assert await target.body(copied.uid) == body
        assert [s.uid for s in missing(summaries, [copied])] == [s.uid for s in summaries[1:]]
    finally:
        await source.close()
        await target.close()


async def test_a_fetch_answer_of_thousands_of_lines_is_parsed(client, admin_token):
    """aioimaplib recursed once per line and hit RecursionError on answers like this one."""
    address = await _account(client, admin_token)
    session = await _open(address)
    try:
        await session.create("Many")
        big = b"From: a@example.net\r\nSubject: x\r\nMessage-ID: <%d@x>\r\n\r\nbody\r\n"
        for n in range(1500):
            await session.append("Many", big % n, ("\\Seen",), str(1600000000 + n))
        await session.select("Many", readonly=True)
        summaries = await session.summaries()
        assert len(summaries) == 1500 and len({s.key for s in summaries}) == 1500
    finally:
        await session.close()


async def test_multiappend_writes_a_batch_at_once_and_select_and_status_tell_the_uids(client, admin_token):
    """aioimaplib has neither MULTIAPPEND nor LITERAL+, quotes no names, and drops SELECT's and
    STATUS's untagged answers: the adapter adds them, and `n:*` never brings back a message below n."""
    address = await _account(client, admin_token)
    session = await _open(address)
    name = 'Quoted "name" \\ & 日本'
    try:
        await session.create(name)
        empty = await session.status(name)
        batch = [(b"Subject: b%d\r\nMessage-ID: <b%d@x>\r\n\r\n" % (n, n) + b"x" * 5000 * n + b"\r\n", ("$Kw", "\\Seen"),
                  str(1500000000 + n)) for n in range(1, 4)]
        await session.append_many(name, batch)

        selected = await session.select(name, readonly=True)
        assert (selected.messages, selected.uidnext, selected.uidvalidity) == (3, empty.uidnext + 3, empty.uidvalidity)
        summaries = await session.summaries()
        assert [s.internaldate for s in summaries] == [date for _, _, date in batch]
        assert all(set(s.flags) >= {"$Kw", "\\Seen"} for s in summaries)
        assert [await session.body(s.uid) for s in summaries] == [body for body, _, _ in batch]
        assert [s.uid for s in await session.summaries(summaries[1].uid)] == [s.uid for s in summaries[1:]]
        assert await session.summaries(selected.uidnext) == []  # `n:*` names the last message too: left out
    finally:
        await session.close()


async def test_flags_a_source_invents_cannot_inject_commands_into_our_append(client, admin_token):
    """Ensure a source's "flags" that are no flags — a non-synchronizing literal `{1+}`, a quote, a
    parenthesis — never reach our APPEND line, where Dovecot would take the message body for commands
    in the user's own session: a body `x1 DELETE Archive` deletes nothing, and the message is stored
    with its real flags, by MULTIAPPEND and by one APPEND alike."""
    address = await _account(client, admin_token)
    target = await _open(address)
    hostile = ("\\Seen", "{1+}", 'a"b', "a)b")
    body = b"x1 DELETE Archive\r\nx2 DELETE Sent\r\n"
    try:
        await target.select("INBOX")
        await target.append_many("INBOX", [(body, hostile, "1700000000"), (body, hostile, "1700000001")])
        await target.append("INBOX", body, hostile, "1700000002")

        names = {our_name(f) for f in await target.folders()}
        await target.select("INBOX")
        stored = await target.summaries()
        assert {"Archive", "Sent"} <= names
        assert len(stored) == 3 and all(s.flags == ("\\Seen",) for s in stored)
        assert [await target.body(s.uid) for s in stored] == [body] * 3
    finally:
        await target.close()


async def test_a_refused_batch_is_stored_one_by_one_and_a_folders_refusal_stays_the_folders(client, admin_token):
    """Ensure a message Dovecot will not store (an empty one, refused without a response code) is named
    and the rest of its batch stored; a refusal with a code (TRYCREATE: no such folder) is the whole
    folder's, raised rather than spelt out message by message."""
    address = await _account(client, admin_token)
    target = await _open(address)
    good = b"Subject: fine\r\n\r\nbody\r\n"
    try:
        refused = await target.append_many("INBOX", [(good, (), "1700000000"), (b"", (), "1700000001"),
                                                     (good, (), "1700000002")])
        await target.select("INBOX")
        assert refused == {1: "Can't save a zero byte message."} and len(await target.summaries()) == 2

        with pytest.raises(ImapError) as folders:
            await target.append_many("Gone", [(good, (), "1700000000"), (good, (), "1700000001")])
        assert (folders.value.category, folders.value.code) == ("refused_here", "TRYCREATE")
    finally:
        await target.close()
