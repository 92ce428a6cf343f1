"""Settings refuse to start without real secrets."""

import pytest
from pydantic import ValidationError

from services.account.settings import AccountSettings
from shared.auth import generate_keypair

PRIVATE, PUBLIC = generate_keypair()
GOOD = {
    "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/", "MONGODB_URL": "mongodb://127.0.0.1:27017/",
    "SESSION_PRIVATE_KEY": PRIVATE, "SESSION_PUBLIC_KEY": PUBLIC, "DOVECOT_PASSWD_DIR": "/tmp/passwd.d", "DOVECOT_MAIL_DIR": "/tmp/mail",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch):
    for name in (*GOOD, "BOOTSTRAP_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
    return set_env


def test_real_secrets_are_accepted(environment):
    """Ensure settings load when every secret is present and real."""
    environment(**GOOD)
    assert AccountSettings().session_public_key == PUBLIC


@pytest.mark.parametrize("missing", ["SESSION_PRIVATE_KEY", "SESSION_PUBLIC_KEY", "AMQP_URL", "MONGODB_URL"])
def test_a_missing_secret_is_refused(environment, missing):
    """Ensure the service refuses to start when a secret or connection URL is missing."""
    environment(**{k: v for k, v in GOOD.items() if k != missing})
    with pytest.raises(ValidationError, match=missing.lower()):
        AccountSettings()


@pytest.mark.parametrize("name", ["SESSION_PRIVATE_KEY", "BOOTSTRAP_ADMIN_PASSWORD"])
def test_a_placeholder_secret_is_refused(environment, name):
    """Ensure a default-looking secret such as "changeme" is refused."""
    environment(**{**GOOD, name: "changeme"})
    with pytest.raises(ValidationError, match="placeholder"):
        AccountSettings()


def test_keys_that_are_not_a_pair_are_refused(environment, monkeypatch):
    """Ensure the account service refuses to start when its public key is not its private key's."""
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SESSION_PUBLIC_KEY", generate_keypair()[1])

    with pytest.raises(ValidationError, match="not the public key"):
        AccountSettings()
