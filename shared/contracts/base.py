"""Envelope, replies, shared reject codes and the message kinds every service builds on."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_args
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


Params = dict[str, int | str]
"""What a message says beside its code: limits, lengths, names (never a secret)."""


class FieldError(BaseModel):
    """One broken rule of one field, as it travels. `message` is English (mailctl, logs); every
    number in it is in `params` too, named as the contract's FIELD_PARAMS says for `code`, so a
    client words it in its own language. Each contract narrows `code` to what it can answer."""

    model_config = ConfigDict(frozen=True)

    field: str
    code: str
    message: str
    params: Params = Field(default_factory=dict)


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
"""Codes every service may answer; a contract's RejectCode adds the service's own."""

SharedFieldCode = Literal[
    "missing",
    "extra_forbidden",
    "string_too_short",
    "string_too_long",
    "too_short",
    "too_long",
    "greater_than_equal",
    "less_than_equal",
    "literal_error",
    "string_pattern_mismatch",
    "invalid_value",
    "too_large",
]
"""Field codes the kit answers for every service (with `invalid_message`): a message that does not
match its contract (pydantic's error types our contracts can produce; any other is `invalid_value`),
or a body over the size limit (`too_large`, field `body`)."""

FIELD_CODES: tuple[SharedFieldCode, ...] = get_args(SharedFieldCode)
REJECT_CODES: tuple[RejectCode, ...] = get_args(RejectCode)
FIELD_PARAMS: Mapping[SharedFieldCode, tuple[str, ...]] = {
    "missing": (),
    "extra_forbidden": (),
    "string_too_short": ("min_length",),
    "string_too_long": ("max_length",),
    "too_short": ("min_length", "actual_length"),
    "too_long": ("max_length", "actual_length"),
    "greater_than_equal": ("ge",),
    "less_than_equal": ("le",),
    "literal_error": ("expected",),
    "string_pattern_mismatch": ("pattern",),
    "invalid_value": (),
    "too_large": ("max_bytes",),
}
"""the params each shared field code carries"""


class SharedFieldError(FieldError):
    code: SharedFieldCode

    if TYPE_CHECKING:  # the code is checked where it is built (pydantic's mypy plugin leaves __init__ untyped)
        def __init__(self, *, field: str, code: SharedFieldCode, message: str, params: Params = ...) -> None: ...


class Accepted(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["accepted"] = "accepted"
    command_id: UUID | None = None
    result: dict[str, Any] = Field(default_factory=dict)


class Rejected(BaseModel):
    """A refusal as it travels: `code` is one of the answering contract's REJECT_CODES."""

    model_config = ConfigDict(frozen=True)

    status: Literal["rejected"] = "rejected"
    command_id: UUID | None = None
    code: str
    message: str
    errors: tuple[FieldError, ...] = ()


class SharedRejected(Rejected):
    """A refusal any service may give (the kit's, a session's); a contract's own Rejected adds its codes."""

    code: RejectCode

    if TYPE_CHECKING:
        def __init__(self, *, command_id: UUID | None = None, code: RejectCode, message: str,
                     errors: tuple[FieldError, ...] = ()) -> None: ...


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


def rejection(command: Keyed, code: RejectCode, message: str, *errors: FieldError) -> Rejected:
    """The reply refusing `command` with a shared code (a service's own codes: its contract's Rejected)."""
    return SharedRejected(command_id=command.message_id, code=code, message=message, errors=errors)
