"""Sign-in attempts counted per client address and per login, on this gateway instance only (the
account service's lockout is the one every instance shares)."""

from collections import OrderedDict, deque
from dataclasses import dataclass, field

KEYS_KEPT = 20_000
"""the counters kept at most (the oldest forgotten first): a flood of new names cannot grow memory"""


@dataclass
class AttemptLimit:
    attempts: int
    window_s: float
    _seen: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def retry_after(self, keys: tuple[str, ...], now: float) -> float:
        """0 when an attempt under every key is allowed now; otherwise the seconds to wait."""
        waits = [self._wait(key, now) for key in keys]
        return max(waits, default=0.0)

    def record(self, keys: tuple[str, ...], now: float) -> None:
        for key in keys:
            times = self._seen.pop(key, None) or deque()
            times.append(now)
            while len(times) > self.attempts:
                times.popleft()
            self._seen[key] = times
        while len(self._seen) > KEYS_KEPT:
            self._seen.popitem(last=False)

    def _wait(self, key: str, now: float) -> float:
        times = self._seen.get(key)
        if not times or len(times) < self.attempts:
            return 0.0
        return max(0.0, times[0] + self.window_s - now)
