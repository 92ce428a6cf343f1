"""Secrets out of anything kept for operators (set-aside bodies) or remembered (replay digests).

Allow-listed, not deny-listed: a field keeps its value only when a contract the service knows
declares it and does not mark it secret (a `Secret`, or a field kept out of repr like the session
token). Everything else — `passwd`, `pwd`, `credentials`, a field nobody declared — is blanked,
however deep.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, SecretStr

WITHHELD = b"<not json; body withheld>"
TOO_LARGE = b"<body over the size limit; withheld>"
MAX_BODY_BYTES = 256 * 1024
"""The largest body any service parses: the largest valid command (300 forward destinations of 254
characters are ~80 KB of JSON) with room. Larger ones are refused unread."""
REDACTED = "[redacted]"


def _is_secret(field: Any) -> bool:
    return not field.repr or _holds_secret(field.annotation)


def _holds_secret(annotation: Any) -> bool:
    """SecretStr itself, or inside Optional / a union / Annotated / a container."""
    if isinstance(annotation, type) and issubclass(annotation, SecretStr):
        return True
    return any(_holds_secret(arg) for arg in get_args(annotation))


ENVELOPE = frozenset({"type", "message_id", "correlation_id", "causation_id", "occurred_at"})
"""what a body of an unknown or missing type keeps"""


def allowed_fields(kind: type[BaseModel]) -> frozenset[str]:
    return frozenset(name for name, field in kind.model_fields.items() if not _is_secret(field))


@dataclass(frozen=True)
class Redactor:
    by_type: Mapping[str, frozenset[str]]
    """message type -> the fields of that message whose values may be kept"""

    @classmethod
    def for_messages(cls, kinds: Iterable[type[BaseModel]]) -> "Redactor":
        return cls({kind.model_fields["type"].default: allowed_fields(kind)
                    for kind in kinds if "type" in kind.model_fields})

    def allowed(self, type_name: Any) -> frozenset[str]:
        return self.by_type.get(type_name, ENVELOPE) if isinstance(type_name, str) else ENVELOPE

    def __call__(self, body: bytes) -> bytes:
        """A body keeps its shape for operators but only the values of its type's non-secret fields;
        never more than MAX_BODY_BYTES (redacting many short values can make a body grow)."""
        if len(body) > MAX_BODY_BYTES:
            return TOO_LARGE
        try:
            value = json.loads(body)
            allowed = self.allowed(value.get("type")) if isinstance(value, dict) else ENVELOPE
            kept = json.dumps(_kept(value, allowed)).encode()
        except (ValueError, RecursionError):
            return WITHHELD
        return kept if len(kept) <= MAX_BODY_BYTES else TOO_LARGE


def _kept(value: Any, allowed: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _kept(v, allowed) if k in allowed else REDACTED for k, v in value.items()}
    if isinstance(value, list):
        return [_kept(item, allowed) for item in value]
    return value
