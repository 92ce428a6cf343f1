"""Sessions kept between steps: reused for the same key only, never after a step that failed
mid-command, never once the connection is gone, and closed when idle too long or too many."""

import pytest

from services.copyjob.adapters.kept_sessions import KeptSessions


class _Session:
    def __init__(self) -> None:
        self.alive, self.closed = True, False

    async def close(self) -> None:
        self.closed, self.alive = True, False


async def _use(kept: KeptSessions, key: tuple[str, ...], *, fail: bool = False) -> _Session:
    async with kept.session(key, _open) as session:
        if fail:
            raise ConnectionError("mid-command")
    return session  # type: ignore[return-value]


async def _open() -> _Session:
    return _Session()


async def test_a_session_is_reused_for_its_key_only():
    kept = KeptSessions()
    first = await _use(kept, ("target", "a@example.jp"))

    assert await _use(kept, ("target", "a@example.jp")) is first
    assert await _use(kept, ("target", "b@example.jp")) is not first


async def test_a_failed_step_or_a_dead_connection_is_not_reused():
    kept = KeptSessions()
    with pytest.raises(ConnectionError):
        await _use(kept, ("source", "job"), fail=True)
    dead = await _use(kept, ("source", "job"))
    dead.alive = False

    assert await _use(kept, ("source", "job")) is not dead


async def test_idle_and_surplus_sessions_are_closed():
    idle = KeptSessions(idle_s=0.0)
    first = await _use(idle, ("target", "a"))
    await _use(idle, ("target", "b"))
    assert first.closed

    few = KeptSessions(most=1)
    older = await _use(few, ("target", "a"))
    await _use(few, ("target", "b"))
    assert older.closed
    await few.close()
