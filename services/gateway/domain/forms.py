"""Form tokens that need no storage: an HMAC of what the form belongs to.

- A signed-in form carries `form_token(session)`: only a page rendered for that session can post.
- The sign-in form carries a nonce bound to a random pre-session cookie and its issue time, so a
  cross-site page cannot sign a browser in to an attacker's account (login CSRF).
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

NONCE_LIFETIME_S = 2 * 3600


@dataclass(frozen=True)
class FormKeys:
    key: bytes

    def _mac(self, purpose: str, *parts: str) -> str:
        message = "\x1f".join((purpose, *parts)).encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def form_token(self, session_token: str) -> str:
        return self._mac("form", session_token)

    def form_token_valid(self, session_token: str, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.form_token(session_token), given)

    def sign_in_nonce(self, pre_session: str, now: float) -> str:
        issued = str(int(now))
        return f"{issued}.{self._mac('sign-in', pre_session, issued)}"

    def sign_in_nonce_valid(self, pre_session: str | None, given: str | None, now: float) -> bool:
        if not pre_session or not given:
            return False
        issued, _, mac = given.partition(".")
        if not issued.isdigit() or not 0 <= now - int(issued) <= NONCE_LIFETIME_S:
            return False
        return hmac.compare_digest(self._mac("sign-in", pre_session, issued), mac)


def new_pre_session() -> str:
    return secrets.token_urlsafe(24)
