"""IMAP sessions a worker keeps open between its steps: a login costs tens of milliseconds (more on
our Dovecot, which asks the account service's guessing policy first), and a job's steps come one
after another to the same worker. A session is kept only after a step that ended cleanly (one that
failed mid-command may have an answer still coming); idle ones are closed after a while."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from services.copyjob.adapters.imap import Session

IDLE_S = 30.0
MOST_KEPT = 16


class KeptSessions:
    def __init__(self, idle_s: float = IDLE_S, most: int = MOST_KEPT) -> None:
        self._idle_s, self._most = idle_s, most
        self._kept: dict[tuple[str, ...], list[tuple[Session, float]]] = {}

    @asynccontextmanager
    async def session(self, key: tuple[str, ...], open_session: Callable[[], Awaitable[Session]]) -> AsyncIterator[Session]:
        """A kept session for `key` (say, ("target", address)) or a new one from `open_session`."""
        await self._close_idle()
        session = self._take(key) or await open_session()
        try:
            yield session
        except BaseException:
            await session.close()
            raise
        if session.alive:
            self._kept.setdefault(key, []).append((session, time.monotonic()))
        await self._close_beyond_most()

    def _take(self, key: tuple[str, ...]) -> Session | None:
        while kept := self._kept.get(key):
            session, _ = kept.pop()
            if session.alive:
                return session
        return None

    async def _close_idle(self) -> None:
        now = time.monotonic()
        for key, kept in list(self._kept.items()):
            stale = [s for s, since in kept if now - since > self._idle_s]
            self._kept[key] = [(s, since) for s, since in kept if now - since <= self._idle_s]
            await asyncio.gather(*(s.close() for s in stale))

    async def _close_beyond_most(self) -> None:
        kept = sorted(((since, key, session) for key, sessions in self._kept.items() for session, since in sessions),
                      key=lambda entry: entry[0])
        for _, key, session in kept[: max(0, len(kept) - self._most)]:
            self._kept[key] = [(s, since) for s, since in self._kept[key] if s is not session]
            await session.close()

    async def close(self) -> None:
        kept, self._kept = self._kept, {}
        await asyncio.gather(*(s.close() for sessions in kept.values() for s, _ in sessions))
