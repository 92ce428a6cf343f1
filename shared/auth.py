"""Session tokens (Ed25519-signed JWT) and the actor rules every service enforces locally.

Only the account service holds the private key and can mint tokens; every other service
verifies with the public key, so a compromised service cannot impersonate anyone.
"""

import base64
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import uuid4

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

Role = Literal["user", "admin"]
ISSUER = "mail-self-service/account"
AUDIENCE = "mail-self-service"
"""tokens of this system only: a token minted with the same key for something else is refused"""
CLOCK_SKEW = timedelta(seconds=30)
"""how far the clocks of the issuing and the checking host may disagree"""
ROLES: frozenset[str] = frozenset({"user", "admin"})
ALGORITHM = "EdDSA"


class InvalidToken(Exception):
    """The token is missing, malformed, expired or not signed by the account service."""


class ExpiredToken(InvalidToken):
    """The token is the account service's own, but it has expired (a logout of it has nothing left to end)."""


@dataclass(frozen=True)
class Actor:
    subject: str
    role: Role
    domains: frozenset[str]
    expires_at: datetime
    issued_at: datetime
    token_id: str = ""
    """the token's `jti`: what EndSession ends (shared/sessions.py), never the token itself"""

    def may_act_on(self, address: str) -> bool:
        """A user acts only on their own address; an admin only within their domains."""
        if self.role == "admin":
            return address.rpartition("@")[2].lower() in self.domains
        return address.lower() == self.subject

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def load_private_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_b64decode(text))


def load_public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_b64decode(text))


def is_pair(private_text: str, public_text: str) -> bool:
    """The public key is the private key's own: tokens signed with one verify with the other."""
    private_public = load_private_key(private_text).public_key().public_bytes_raw()
    return private_public == load_public_key(public_text).public_bytes_raw()


def generate_keypair() -> tuple[str, str]:
    """(private, public) as base64url raw bytes, the format the settings take."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes_raw()
    return _b64encode(raw_private), _b64encode(private.public_key().public_bytes_raw())


@dataclass(frozen=True)
class TokenIssuer:
    private_key: Ed25519PrivateKey
    lifetime: timedelta

    def issue(self, *, subject: str, role: Role, domains: frozenset[str], now: datetime) -> tuple[str, datetime]:
        expires_at = now + self.lifetime
        claims = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "role": role, "domains": sorted(domains),
            # fractional iat (allowed by JWT): a password change ends sessions signed before it,
            # even within the same second
            "iat": now.timestamp(), "exp": int(expires_at.timestamp()), "jti": uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM), expires_at


VERIFIED_KEPT = 10_000


@dataclass(frozen=True)
class TokenVerifier:
    """Checks signature, issuer, audience, role and expiry (with CLOCK_SKEW); a token seen before is
    not decoded again (its expiry is)."""

    public_key: Ed25519PublicKey
    _verified: OrderedDict[str, Actor] = field(default_factory=OrderedDict, compare=False, repr=False)

    def verify(self, token: str) -> Actor:
        if (actor := self._verified.get(token)) is not None:
            if actor.expires_at + CLOCK_SKEW <= datetime.now(UTC):
                raise ExpiredToken("ExpiredSignatureError")
            return actor
        actor = self._decode(token)
        self._verified[token] = actor
        if len(self._verified) > VERIFIED_KEPT:
            self._verified.popitem(last=False)
        return actor

    def _decode(self, token: str) -> Actor:
        try:
            claims = jwt.decode(
                token, self.public_key, algorithms=[ALGORITHM], issuer=ISSUER, audience=AUDIENCE,
                leeway=CLOCK_SKEW, options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
            )
            if claims["role"] not in ROLES or not isinstance(claims["sub"], str):
                raise ValueError("unknown role")
            return Actor(
                subject=claims["sub"], role=claims["role"],
                domains=frozenset(str(domain) for domain in claims.get("domains", ())),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
                issued_at=datetime.fromtimestamp(claims["iat"], UTC), token_id=str(claims["jti"]),
            )
        except jwt.ExpiredSignatureError:  # raised only once the signature is verified
            raise ExpiredToken("ExpiredSignatureError") from None
        except (jwt.PyJWTError, KeyError, TypeError, ValueError) as error:
            raise InvalidToken(type(error).__name__) from None


def unverified_subject(token: str) -> str:
    """The subject a token names, signature NOT checked: only to route a command that carries nothing
    but its token (EndSession) to its subject's shard; the handler verifies the token before anything."""
    try:
        subject = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        return ""
    return subject.strip().lower() if isinstance(subject, str) else ""
