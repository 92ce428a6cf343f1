"""Envelope, replies and the secret type shared by every contract."""

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SecretStr


def _reveal(secret: SecretStr) -> str:
    return secret.get_secret_value()


Secret = Annotated[SecretStr, PlainSerializer(_reveal, return_type=str, when_used="json")]
"""A secret travels in clear on the wire (JSON) but never in repr, str, logs or python dumps."""


def _now() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    message_id: UUID = Field(default_factory=uuid4)
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    occurred_at: datetime = Field(default_factory=_now)


class Command(Message):
    """An imperative request to the one service that owns it; always answered with a Reply."""

    actor_token: str = Field(min_length=1, max_length=4096, repr=False)

    def subject_key(self) -> str:
        """The account the command acts on, as it keys per-account ordering (header x-account)."""
        return str(getattr(self, "address", "")).strip().lower()


class AnonymousCommand(Message):
    """A command that needs no session (only Login)."""

    def subject_key(self) -> str:
        return str(getattr(self, "login", "")).strip().lower()


class FlushOutbox(AnonymousCommand):
    """Internal: relay an aggregate's pending events from inside its turn (sent by the sweeper).
    Harmless from anyone: it only publishes events that were already decided."""

    type: Literal["FlushOutbox"] = "FlushOutbox"
    key: str = Field(min_length=1, max_length=254)

    def subject_key(self) -> str:
        return self.key.strip().lower()


class Event(Message):
    """A fact, past tense; any number of subscribers. Published on `events` under ROUTING_KEY."""

    ROUTING_KEY: ClassVar[str]


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    code: str
    message: str


RejectCode = Literal[
    "invalid_message",
    "validation_failed",
    "unauthenticated",
    "forbidden",
    "not_found",
    "already_exists",
    "not_allowed_on_plan",
    "invalid_credentials",
    "locked",
    "unavailable",
]


class Accepted(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["accepted"] = "accepted"
    command_id: UUID | None = None
    result: dict[str, Any] = Field(default_factory=dict)


class Rejected(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["rejected"] = "rejected"
    command_id: UUID | None = None
    code: RejectCode
    message: str
    errors: tuple[FieldError, ...] = ()


Reply = Annotated[Accepted | Rejected, Field(discriminator="status")]
