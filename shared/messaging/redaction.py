"""Secrets out of anything kept for operators (set-aside bodies) or remembered (replay digests)."""

import json
from typing import Any

SECRET_WORDS = ("password", "token", "secret")
WITHHELD = b"<not json; body withheld>"


def redact(body: bytes) -> bytes:
    """A body keeps its shape for operators but loses every secret, however deep."""
    try:
        return json.dumps(_redacted(json.loads(body))).encode()
    except (ValueError, RecursionError):
        return WITHHELD


def _secret_name(key: str) -> bool:
    """Any spelling a sender might use: newPassword, actor-token, Client_Secret..."""
    folded = key.lower().replace("_", "").replace("-", "")
    return any(word in folded for word in SECRET_WORDS)


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "[redacted]" if _secret_name(k) else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value
