"""The panel's pure rules: form tokens and sign-in nonces, the attempt limit."""

from services.gateway.domain.forms import NONCE_LIFETIME_S, FormKeys
from services.gateway.domain.throttle import KEYS_KEPT, AttemptLimit

KEYS = FormKeys(b"k" * 32)


def test_a_form_token_belongs_to_one_session() -> None:
    token = KEYS.form_token("session-a")
    assert KEYS.form_token_valid("session-a", token)
    assert not KEYS.form_token_valid("session-b", token)
    assert not KEYS.form_token_valid("session-a", None) and not KEYS.form_token_valid("session-a", "")
    assert not FormKeys(b"x" * 32).form_token_valid("session-a", token)


def test_a_sign_in_nonce_belongs_to_its_pre_session_and_expires() -> None:
    nonce = KEYS.sign_in_nonce("pre", now=1_000_000)
    assert KEYS.sign_in_nonce_valid("pre", nonce, now=1_000_000 + NONCE_LIFETIME_S)
    assert not KEYS.sign_in_nonce_valid("pre", nonce, now=1_000_001 + NONCE_LIFETIME_S)
    assert not KEYS.sign_in_nonce_valid("pre", nonce, now=999_999), "issued in the future"
    assert not KEYS.sign_in_nonce_valid("other", nonce, now=1_000_000)
    assert not KEYS.sign_in_nonce_valid(None, nonce, now=1_000_000)
    issued, _, mac = nonce.partition(".")
    assert not KEYS.sign_in_nonce_valid("pre", f"{int(issued) + 1}.{mac}", now=1_000_000)


def test_attempts_are_limited_per_key_within_the_window() -> None:
    limit = AttemptLimit({"client": 3, "login": 3}, window_s=60)
    for second in range(3):
        assert limit.retry_after(("client:a", "login:x"), now=second) == 0
        limit.record(("client:a", "login:x"), now=second)
    assert limit.retry_after(("client:a",), now=10) == 50
    assert limit.retry_after(("client:b", "login:x"), now=10) == 50, "the login is limited from any client"
    assert limit.retry_after(("client:b", "login:y"), now=10) == 0
    assert limit.retry_after(("client:a",), now=60) == 0


def test_a_flood_of_new_names_cannot_grow_the_counters_without_bound() -> None:
    limit = AttemptLimit({"login": 3}, window_s=60)
    for n in range(KEYS_KEPT + 500):
        limit.record((f"login:{n}",), now=0)
    assert len(limit._seen) == KEYS_KEPT
