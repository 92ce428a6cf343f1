"""Reading a source's answers: when a FETCH answer is complete (counted as lines come, as aioimaplib
counts, but once each: a hostile server's lines cannot make it quadratic), and a date that is none."""

import asyncio

import pytest
from aioimaplib import aioimaplib
from hypothesis import given
from hypothesis import strategies as st

from services.copyjob.adapters.imap import ImapError, _Fetch, _Fetched, summary_of

LINES = st.lists(st.one_of(st.sampled_from([b"* 1 FETCH (UID 1", b"* 2 FETCH (UID 2 FLAGS (\\Seen))", b")", b"(", b"x"]),
                           st.binary(max_size=8).map(bytearray)), max_size=30)


@given(LINES)
def test_a_fetch_answer_is_complete_exactly_when_aioimaplib_says_so(lines):
    async def both() -> None:
        loop = asyncio.get_running_loop()
        theirs, ours = aioimaplib.FetchCommand("A1", "1:*", "(UID)", loop=loop), _Fetch("A1", "1:*", "(UID)", loop=loop)
        for line in lines:
            theirs.append_to_resp(line)
            ours.append_to_resp(line)
            assert ours.wait_data() == theirs.wait_data()

    asyncio.run(both())


def test_a_date_that_is_none_is_the_sources_error():
    record = _Fetched(b'* 1 FETCH (UID 1 FLAGS () INTERNALDATE "31-Foo-2024 99:00:00 +0000" RFC822.SIZE 3', b"")
    with pytest.raises(ImapError) as raised:
        summary_of(record)
    assert raised.value.category == "source_protocol"


def test_a_folder_name_holding_an_asterisk_and_a_space_comes_through_whole():
    from services.copyjob.adapters.imap import _Protocol

    async def listed() -> list[bytes]:
        loop = asyncio.get_running_loop()
        protocol = _Protocol(loop)
        command = aioimaplib.Command("LIST", "A1", loop=loop)
        protocol.pending_sync_command = command
        protocol._untagged_response(b'* LIST () "/" "Todo * urgent"')
        return command.response.lines

    assert asyncio.run(listed()) == [b'LIST () "/" "Todo * urgent"']
