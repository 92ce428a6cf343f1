"""Redaction of what is set aside: only the fields a contract declares and does not mark secret keep
their values, however a sender spells or nests the rest."""

import json

import pytest

from services.account.entrypoint import CLIENT_COMMANDS
from shared.contracts.account import SetFirstAdmin
from shared.contracts.base import FlushOutbox
from shared.messaging.redaction import Redactor

ADDRESS = "a@example.jp"
TOKEN = "actor-token-never-leaks"
PASSWORD = "Leaky-Secret-123!"


redact = Redactor.for_messages((*CLIENT_COMMANDS, SetFirstAdmin, FlushOutbox))


def test_redact_keeps_only_declared_fields_that_are_not_secret():
    """Ensure redaction keeps the values of fields a contract declares and does not mark secret, and blanks
    everything else however it is spelled or nested: secrets, and fields nobody declared."""
    body = {
        "type": "CreateAccount", "address": ADDRESS, "actor_token": TOKEN, "initial_password": PASSWORD,
        "passwd": PASSWORD, "pwd": PASSWORD, "pass": PASSWORD, "passphrase": PASSWORD, "credentials": {"p": PASSWORD},
        "comment": "kept", "sources": [{"source_password": PASSWORD, "address": ADDRESS}],
    }

    redacted = json.loads(redact(json.dumps(body).encode()))

    assert redacted == {
        "type": "CreateAccount", "address": ADDRESS, "actor_token": "[redacted]", "initial_password": "[redacted]",
        "passwd": "[redacted]", "pwd": "[redacted]", "pass": "[redacted]", "passphrase": "[redacted]",
        "credentials": "[redacted]", "comment": "kept", "sources": "[redacted]",
    }
    assert PASSWORD not in json.dumps(redacted) and TOKEN not in json.dumps(redacted)


def test_secret_fields_of_the_contracts_are_never_allowed():
    """Ensure every Secret field and the session token of the contracts is outside the allow-list."""
    assert {"actor_token", "initial_password"}.isdisjoint(redact.allowed("CreateAccount"))
    assert {"address", "comment", "quota_mb", "plan", "message_id", "type"} <= redact.allowed("CreateAccount")
    assert {"actor_token", "new_password", "current_password"}.isdisjoint(redact.allowed("ChangePassword"))
    assert {"password", "login"}.isdisjoint(redact.allowed("Login"))


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe\x00garbage"], ids=["broken", "empty", "not utf-8"])
def test_redact_withholds_a_body_that_is_not_json(body):
    """Ensure a body that is not JSON is replaced by a placeholder, never passed through."""
    assert redact(body) == b"<not json; body withheld>"


def test_redact_keeps_a_body_without_secrets():
    """Ensure a JSON body of its type's declared, non-secret fields comes back with the same content."""
    body = {"type": "ChangeComment", "address": ADDRESS, "comment": "x", "message_id": "m"}

    assert json.loads(redact(json.dumps(body).encode())) == body


def test_every_secret_field_of_every_contract_is_redacted():
    """Ensure no field typed Secret (also optional, in a union or annotated) or kept out of repr keeps its value."""
    from pydantic import SecretStr

    from shared.contracts import account

    kinds = [k for k in vars(account).values() if isinstance(k, type) and "type" in getattr(k, "model_fields", {})]
    every = Redactor.for_messages(kinds)
    for kind in kinds:
        secret = {name for name, field in kind.model_fields.items()
                  if not field.repr or "SecretStr" in repr(field.annotation) or field.annotation is SecretStr}
        assert secret.isdisjoint(every.allowed(kind.model_fields["type"].default)), kind.__name__
    assert "current_password" not in every.allowed("ChangePassword") and "login" not in every.allowed("Login")
