"""Guessing limits that live in memory: failed attempts per key (a login that does not exist, an
address or a source over IMAP), bounded in size, and forgotten once their window and lock are over.
Pure; the caller gives the time."""

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from services.account.domain.account import LockoutPolicy, SignInState


@dataclass
class FailureCounters:
    """At most `max_keys` keys; the one touched least recently goes first. An attacker spraying
    more keys than that only loses track of the oldest, never grows the memory."""

    policy: LockoutPolicy
    max_keys: int
    _states: OrderedDict[str, SignInState] = field(default_factory=OrderedDict)

    def state(self, key: str, now: datetime) -> SignInState:
        state = self._states.get(key)
        if state is None:
            return SignInState()
        if self._over(state, now):
            del self._states[key]
            return SignInState()
        return state

    def is_locked(self, key: str, now: datetime) -> bool:
        return self.state(key, now).is_locked(now)

    def failed(self, key: str, now: datetime) -> SignInState:
        state = self.state(key, now).after_failure(now, self.policy)
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > self.max_keys:
            self._states.popitem(last=False)
        return state

    def forget(self, key: str) -> None:
        self._states.pop(key, None)

    def __len__(self) -> int:
        return len(self._states)

    def _over(self, state: SignInState, now: datetime) -> bool:
        window_over = state.first_failure_at is None or now - state.first_failure_at >= self.policy.window
        return window_over and not state.is_locked(now)


@dataclass
class KnownGood:
    """Per address, the last few password fingerprints that signed in successfully. A failure with
    one of them is a client still using a previous password, not a guess."""

    max_keys: int
    per_key: int = 4
    _seen: OrderedDict[str, tuple[str, ...]] = field(default_factory=OrderedDict)

    def add(self, key: str, fingerprint: str) -> None:
        kept = tuple(f for f in self._seen.get(key, ()) if f != fingerprint)
        self._seen[key] = (fingerprint, *kept)[: self.per_key]
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)

    def __contains__(self, pair: tuple[str, str]) -> bool:
        key, fingerprint = pair
        return fingerprint in self._seen.get(key, ())
