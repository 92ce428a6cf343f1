"""Secrets out of anything kept for operators (set-aside bodies) or remembered (replay digests).

Allow-listed, not deny-listed: a field keeps its value only when a contract the service knows
declares it and does not mark it secret (a `Secret`, or a field kept out of repr like the session
token). Everything else — `passwd`, `pwd`, `credentials`, a field nobody declared — is blanked,
however deep.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr

WITHHELD = b"<not json; body withheld>"
REDACTED = "[redacted]"


def _is_secret(field: Any) -> bool:
    annotation = field.annotation
    return not field.repr or (isinstance(annotation, type) and issubclass(annotation, SecretStr))


def allowed_fields(kinds: Iterable[type[BaseModel]]) -> frozenset[str]:
    return frozenset(name for kind in kinds for name, field in kind.model_fields.items() if not _is_secret(field))


@dataclass(frozen=True)
class Redactor:
    allowed: frozenset[str]

    @classmethod
    def for_messages(cls, kinds: Iterable[type[BaseModel]]) -> "Redactor":
        return cls(allowed_fields(kinds))

    def __call__(self, body: bytes) -> bytes:
        """A body keeps its shape for operators but only the values of known, non-secret fields."""
        try:
            return json.dumps(self._kept(json.loads(body))).encode()
        except (ValueError, RecursionError):
            return WITHHELD

    def _kept(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._kept(v) if k in self.allowed else REDACTED for k, v in value.items()}
        if isinstance(value, list):
            return [self._kept(item) for item in value]
        return value
