"""Session tokens: verified once, remembered, and still refused once expired."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from shared.auth import (
    AUDIENCE,
    CLOCK_SKEW,
    InvalidToken,
    TokenIssuer,
    TokenVerifier,
    generate_keypair,
    load_private_key,
    load_public_key,
)
from shared.auth import (
    ISSUER as TOKEN_ISSUER,
)

PRIVATE, PUBLIC = generate_keypair()
TOKENS = TokenIssuer(load_private_key(PRIVATE), timedelta(hours=1))


def test_a_remembered_token_is_refused_once_it_expires():
    """Ensure a token verified before is refused after its expiry, without being decoded again."""
    verifier = TokenVerifier(load_public_key(PUBLIC))
    token, _ = TOKENS.issue(subject="a@example.jp", role="user", domains=frozenset(), now=datetime.now(UTC))
    actor = verifier.verify(token)
    verifier._verified[token] = actor.__class__(**{**actor.__dict__, "expires_at": datetime.now(UTC) - CLOCK_SKEW - timedelta(seconds=1)})

    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_a_token_signed_by_another_key_is_refused_even_after_a_good_one():
    """Ensure remembering verified tokens never lets a forged one through."""
    verifier = TokenVerifier(load_public_key(PUBLIC))
    good, _ = TOKENS.issue(subject="a@example.jp", role="user", domains=frozenset(), now=datetime.now(UTC))
    stranger = TokenIssuer(load_private_key(generate_keypair()[0]), timedelta(hours=1))
    forged, _ = stranger.issue(subject="a@example.jp", role="admin", domains=frozenset({"example.jp"}),
                               now=datetime.now(UTC))

    assert verifier.verify(good).role == "user"
    with pytest.raises(InvalidToken):
        verifier.verify(forged)


def _signed(**claims) -> str:
    now = datetime.now(UTC).timestamp()
    base = {"iss": TOKEN_ISSUER, "aud": AUDIENCE, "sub": "a@example.jp", "role": "user", "domains": [],
            "iat": now, "exp": int(now) + 3600, "jti": "0123456789abcdef0123456789abcdef"}
    return jwt.encode({**base, **claims}, load_private_key(PRIVATE), algorithm="EdDSA")


def test_a_token_issued_a_few_seconds_ahead_is_accepted():
    """Ensure a token from a host whose clock runs 5 s ahead is accepted (clock skew), 5 minutes ahead is not."""
    verifier = TokenVerifier(load_public_key(PUBLIC))
    ahead = datetime.now(UTC).timestamp() + 5

    assert verifier.verify(_signed(iat=ahead)).subject == "a@example.jp"
    with pytest.raises(InvalidToken):
        verifier.verify(_signed(iat=ahead + 300))


@pytest.mark.parametrize("claims", [{"role": "root"}, {"role": None}, {"aud": "another-system"}, {"aud": None},
                                    {"sub": 42}, {"jti": None}],
                         ids=["root", "no role", "other audience", "no audience", "odd sub", "no token id"])
def test_a_token_with_a_claim_outside_this_system_is_refused(claims):
    """Ensure a validly signed token is refused when its role is not user or admin, its audience not ours, or it
    has no id (a session that no logout could end)."""
    token = _signed(**{k: v for k, v in claims.items() if v is not None})
    if None in claims.values():
        payload = jwt.decode(token, options={"verify_signature": False})
        for key, value in claims.items():
            if value is None:
                payload.pop(key)
        token = jwt.encode(payload, load_private_key(PRIVATE), algorithm="EdDSA")

    with pytest.raises(InvalidToken):
        TokenVerifier(load_public_key(PUBLIC)).verify(token)
