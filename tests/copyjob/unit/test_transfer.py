"""A copy chunk's transfer: every batch when time allows; a chunk still going when its step must
wrap up (a slow source) ends after the batch in hand, so it is recorded rather than failed."""

import asyncio

from services.copyjob.adapters.copier import Copier
from services.copyjob.domain.identity import Summary
from shared.contracts.copyjob import CopyFolder


class _Source:
    async def bodies(self, uids: list[int], announced: int) -> dict[int, bytes]:
        return {uid: b"x" * 10 for uid in uids}


class _Target:
    def __init__(self) -> None:
        self.appended: list[bytes] = []

    async def append_many(self, folder: str, messages: list[tuple[bytes, tuple[str, ...], str]]) -> dict[int, str]:
        self.appended += [body for body, _, _ in messages]
        return {}


async def _nothing(done: int) -> None:
    return None


def _moved(wrap_up_in: float):
    messages = [Summary(uid=n, internaldate="1", size=10, fields_digest="d", flags=(), flags_dropped=n % 2)
                for n in range(1, 121)]  # three batches (50 a batch)
    copier = Copier(peek=None, send=None, vault=None, settings=None)  # type: ignore[arg-type]
    target = _Target()
    item = CopyFolder(address="a@example.jp", job_id="j", folder="INBOX", source_folder="INBOX")

    async def run():
        wrap_up_at = asyncio.get_running_loop().time() + wrap_up_in
        return await copier._transfer(item, messages, _Source(), target, _nothing, wrap_up_at)  # type: ignore[arg-type]

    return asyncio.run(run()), target.appended


def test_a_chunk_with_time_left_copies_every_batch():
    moved, appended = _moved(60)
    assert moved is not None and moved.whole and (moved.copied, moved.copied_bytes, moved.flags_dropped) == (120, 1200, 60)
    assert len(appended) == 120


def test_a_chunk_past_its_wrap_up_ends_after_the_batch_in_hand():
    moved, appended = _moved(-1)
    assert moved is not None and not moved.whole and moved.copied == 50 and len(appended) == 50
