"""The forwarding map under concurrent writers (several processes, several threads each) stays
exact and readable: postmap takes no lock of its own, the adapter's fcntl lock serializes them."""

import asyncio
import os
import sys
import uuid

from services.rules.adapters.postfix_map import ForwardMap

WRITER = """
import asyncio, os, sys
from services.rules.adapters.postfix_map import ForwardMap

async def main(prefix):
    table = ForwardMap(os.environ["POSTFIX_FORWARD_MAP"], os.environ["POSTFIX_CONFIG_DIR"], os.environ["FORWARD_DOMAIN"])
    async def chain(n):
        for step in range(1, 6):
            await table.put({f"{prefix}-{n}-{step}": [f"d{step}@example.org"]})
            await table.remove([f"{prefix}-{n}-{step - 1}"])
    await asyncio.gather(*(chain(n) for n in range(4)))

asyncio.run(main(sys.argv[1]))
"""


def _map() -> ForwardMap:
    return ForwardMap(os.environ["POSTFIX_FORWARD_MAP"], os.environ["POSTFIX_CONFIG_DIR"], os.environ["FORWARD_DOMAIN"])


async def test_concurrent_writers_leave_exactly_what_they_wrote():
    """Ensure 4 processes x 4 chains of put-then-remove leave one entry per chain, no more, no less."""
    prefixes = [f"t{uuid.uuid4().hex[:8]}" for _ in range(4)]
    writers = [await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, prefix) for prefix in prefixes]
    assert [await writer.wait() for writer in writers] == [0, 0, 0, 0]

    table = _map()
    for prefix in prefixes:
        for n in range(4):
            assert await table.lookup(f"{prefix}-{n}-5") == ["d5@example.org"]
            assert [await table.lookup(f"{prefix}-{n}-{step}") for step in range(1, 5)] == [None] * 4
    await table.remove(f"{prefix}-{n}-5" for prefix in prefixes for n in range(4))


async def test_removing_what_is_not_there_is_fine_and_a_missing_table_is_unavailable():
    table = _map()
    await table.remove([f"never-{uuid.uuid4().hex}"])

    missing = ForwardMap("lmdb:/nonexistent/forwards", os.environ["POSTFIX_CONFIG_DIR"], "forward.mailss.invalid")
    from services.rules.adapters.postfix_map import MapUnavailable

    try:
        await missing.put({"k": ["a@example.org"]})
    except MapUnavailable as error:
        assert "/nonexistent/forwards.lmdb" in str(error)
    else:
        raise AssertionError("a missing table must be reported")
