"""Session tokens: verified once, remembered, and still refused once expired."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.auth import InvalidToken, TokenIssuer, TokenVerifier, generate_keypair, load_private_key, load_public_key

PRIVATE, PUBLIC = generate_keypair()
ISSUER = TokenIssuer(load_private_key(PRIVATE), timedelta(hours=1))


def test_a_remembered_token_is_refused_once_it_expires():
    """Ensure a token verified before is refused after its expiry, without being decoded again."""
    verifier = TokenVerifier(load_public_key(PUBLIC))
    token, _ = ISSUER.issue(subject="a@example.jp", role="user", domains=frozenset(), now=datetime.now(UTC))
    actor = verifier.verify(token)
    verifier._verified[token] = actor.__class__(**{**actor.__dict__, "expires_at": datetime.now(UTC) - timedelta(seconds=1)})

    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_a_token_signed_by_another_key_is_refused_even_after_a_good_one():
    """Ensure remembering verified tokens never lets a forged one through."""
    verifier = TokenVerifier(load_public_key(PUBLIC))
    good, _ = ISSUER.issue(subject="a@example.jp", role="user", domains=frozenset(), now=datetime.now(UTC))
    stranger = TokenIssuer(load_private_key(generate_keypair()[0]), timedelta(hours=1))
    forged, _ = stranger.issue(subject="a@example.jp", role="admin", domains=frozenset({"example.jp"}),
                               now=datetime.now(UTC))

    assert verifier.verify(good).role == "user"
    with pytest.raises(InvalidToken):
        verifier.verify(forged)
