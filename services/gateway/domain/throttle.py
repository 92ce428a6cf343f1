"""Failed sign-ins counted per client address and per login, on this gateway instance only (the
account service's lockout is the one every instance shares).

A key is `<kind>:<value>` (`client:192.0.2.1`, `login:taro@example.jp`); each kind has its own ceiling,
a client's higher than a login's: many people may sign in from one office's address.
"""

from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

KEYS_KEPT = 20_000
"""the counters kept at most (the oldest forgotten first): a flood of new names cannot grow memory"""


@dataclass
class AttemptLimit:
    ceilings: Mapping[str, int]
    """failures allowed per kind of key within the window"""
    window_s: float
    _seen: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def retry_after(self, keys: tuple[str, ...], now: float) -> float:
        """0 when an attempt under every key is allowed now; otherwise the seconds to wait."""
        return max((self._wait(key, now) for key in keys), default=0.0)

    def record(self, keys: tuple[str, ...], now: float) -> None:
        for key in keys:
            times = self._seen.pop(key, None) or deque()
            times.append(now)
            while len(times) > self._ceiling(key):
                times.popleft()
            self._seen[key] = times
        while len(self._seen) > KEYS_KEPT:
            self._seen.popitem(last=False)

    def _ceiling(self, key: str) -> int:
        return self.ceilings[key.partition(":")[0]]

    def _wait(self, key: str, now: float) -> float:
        times = self._seen.get(key)
        if not times or len(times) < self._ceiling(key):
            return 0.0
        return max(0.0, times[0] + self.window_s - now)
