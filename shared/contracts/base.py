"""Envelope, replies, shared reject codes and the message kinds every service builds on."""

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


class Keyed(Message):
    """A message handled in the turn of one aggregate: KEY_FIELD names the field holding its key,
    which also routes it to its shard (header x-account)."""

    KEY_FIELD: ClassVar[str]
    REPLAYABLE: ClassVar[bool] = True
    """False: every delivery is handled anew (e.g. a sign-in attempt), nothing is remembered."""

    def subject_key(self) -> str:
        return str(getattr(self, self.KEY_FIELD)).strip().lower()


class Command(Keyed):
    """An imperative request to the one service that owns it; always answered with a Reply."""

    actor_token: str = Field(min_length=1, max_length=4096, repr=False)


class AnonymousCommand(Keyed):
    """A command from a client that needs no session (only Login)."""


class InternalCommand(Keyed):
    """A command a service sends itself (from an event, a sweeper, start-up). It carries no user
    token, so it travels only on the service's own internal exchange: one arriving through
    `commands` is refused."""


class FlushOutbox(InternalCommand):
    """Kit-internal: relay an aggregate's pending events from inside its turn (sent by the sweeper)."""

    KEY_FIELD = "key"
    type: Literal["FlushOutbox"] = "FlushOutbox"
    key: str = Field(min_length=1, max_length=254)


class Event(Message):
    """A fact, past tense; any number of subscribers. Published on `events` under ROUTING_KEY."""

    ROUTING_KEY: ClassVar[str]


class WorkItem(Message):
    """A slow outside effect run by competing workers on the work queue named QUEUE (of the
    service that publishes it). At-least-once: a handler checkpoints by `message_id`."""

    QUEUE: ClassVar[str]
    CONCURRENCY: ClassVar[int | None] = None
    """items of this kind one worker runs at once (None: the service's WORK_PREFETCH): more for
    short independent items (a retention pass, a mail), 1 for long ones that should spread"""
    OVERLAP_SAFE: ClassVar[bool] = False
    """True: two copies of one item may run at the same time (its effect is idempotent even side by
    side), so it skips the work lease (shared/messaging/leases.py) and its database writes"""
    EAGER: ClassVar[bool] = False
    """True: the process whose command staged it starts it as soon as the command's write is stored,
    without waiting for the queue (the queued copy, still the one that counts, then finds it done):
    for short items someone waits on. Only for OVERLAP_SAFE kinds."""


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
    "unavailable",
]
"""Codes every service may answer; a service's own codes live in its contract module."""


class Accepted(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["accepted"] = "accepted"
    command_id: UUID | None = None
    result: dict[str, Any] = Field(default_factory=dict)


class Rejected(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["rejected"] = "rejected"
    command_id: UUID | None = None
    code: str
    message: str
    errors: tuple[FieldError, ...] = ()


Reply = Annotated[Accepted | Rejected, Field(discriminator="status")]


class Requester(BaseModel):
    """Where a deferred answer goes: the asking client's direct reply-to, its correlation id and its
    command's id."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    reply_to: str = Field(max_length=255)
    correlation_id: str = Field(max_length=255)
    command_id: UUID


class Deferred(BaseModel):
    """A handler's "the answer comes later": what it staged is stored, and a later internal command
    that carries the client's Requester in `answers` answers it (shared/messaging/commands.py)."""

    model_config = ConfigDict(frozen=True)
    status: Literal["deferred"] = "deferred"


def rejection(command: Keyed, code: str, message: str, *errors: FieldError) -> Rejected:
    """The reply refusing `command`."""
    return Rejected(command_id=command.message_id, code=code, message=message, errors=errors)
