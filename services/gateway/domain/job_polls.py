"""How often one session may have the copy job service asked for a job's state (GetJob): a page
that polls a running job, several tabs or a script asking in a loop cost the service at most
`asks` commands per `window_s` per session. Asked more often, the page gets the last state it had
of that job (with its time), or, when it has none, a wait (429 with Retry-After). Pure."""

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

SESSIONS_KEPT = 5_000
"""sessions remembered at most (the least recently seen forgotten first): memory stays bounded"""
STATES_KEPT = 4
"""jobs whose last state is kept per session"""

State = TypeVar("State")


@dataclass(frozen=True)
class Seen(Generic[State]):
    at: float
    state: State


@dataclass
class _SessionPolls(Generic[State]):
    asked: deque[float] = field(default_factory=deque)
    last: OrderedDict[str, Seen[State]] = field(default_factory=OrderedDict)


@dataclass
class PollLimit(Generic[State]):
    asks: int
    window_s: float
    _sessions: OrderedDict[str, _SessionPolls[State]] = field(default_factory=OrderedDict)

    def wait(self, session: str, now: float) -> float:
        """0 when the session may have the service asked now; otherwise the seconds until it may."""
        asked = self._of(session).asked
        while asked and asked[0] <= now - self.window_s:
            asked.popleft()
        return 0.0 if len(asked) < self.asks else asked[0] + self.window_s - now

    def asked(self, session: str, now: float) -> None:
        """The service was asked at `now` (and refused: nothing to keep)."""
        self._of(session).asked.append(now)

    def record(self, session: str, job: str, state: State, now: float) -> None:
        """The service was asked about `job` at `now` and answered `state`."""
        polls = self._of(session)
        polls.asked.append(now)
        polls.last.pop(job, None)
        polls.last[job] = Seen(now, state)
        while len(polls.last) > STATES_KEPT:
            polls.last.popitem(last=False)

    def last(self, session: str, job: str) -> Seen[State] | None:
        return self._of(session).last.get(job)

    def _of(self, session: str) -> _SessionPolls[State]:
        polls = self._sessions.pop(session, None) or _SessionPolls()
        self._sessions[session] = polls
        while len(self._sessions) > SESSIONS_KEPT:
            self._sessions.popitem(last=False)
        return polls
