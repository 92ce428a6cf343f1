"""Sessions a principal ended one by one (logouts), kept until their tokens expire. Pure; no I/O."""

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from shared.auth import CLOCK_SKEW

MAX_ENDED_SESSIONS = 50
"""[choice] logouts of unexpired tokens one principal keeps; one more ends every session instead, so
the account's document stays small whatever a script does (each of them took a sign-in)"""


@dataclass(frozen=True)
class EndedSession:
    token_id: str
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        """Refused for its expiry by every verifier, so nothing needs to remember it."""
        return self.expires_at + CLOCK_SKEW <= now

    def encode(self) -> str:
        """One short string, as FerretDB pays for nesting."""
        return f"{self.token_id} {int(self.expires_at.timestamp())}"

    @classmethod
    def decode(cls, text: str) -> "EndedSession":
        token_id, expires = text.split(" ", 1)
        return cls(token_id, datetime.fromtimestamp(int(expires), UTC))


@dataclass(frozen=True)
class EndedSessions:
    sessions: tuple[EndedSession, ...] = ()

    def includes(self, token_id: str) -> bool:
        return bool(token_id) and any(ended.token_id == token_id for ended in self.sessions)

    def with_ended(self, token_id: str, expires_at: datetime, now: datetime) -> "EndedSessions | None":
        """These and one more, the expired ones forgotten; None when MAX_ENDED_SESSIONS are kept already."""
        live = tuple(ended for ended in self.sessions if not ended.expired(now))
        if len(live) >= MAX_ENDED_SESSIONS:
            return None
        return replace(self, sessions=(*live, EndedSession(token_id, expires_at)))

    def encode(self) -> list[str]:
        return [ended.encode() for ended in self.sessions]

    @classmethod
    def decode(cls, texts: list[str] | None) -> "EndedSessions":
        return cls(tuple(EndedSession.decode(text) for text in texts or ()))


NO_ENDED_SESSIONS = EndedSessions()
