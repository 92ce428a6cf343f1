"""Messages of the kit's test service."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.contracts.base import Command, InternalCommand, WorkItem

SERVICE = "kitsvc"


class AddressCommand(Command):
    KEY_FIELD = "address"
    address: str


class Bump(AddressCommand):
    """Add one to the address's counter; `pause_s` holds the turn first (to overlap a takeover)."""

    type: Literal["Bump"] = "Bump"
    pause_s: float = Field(default=0, ge=0, le=30)


class Rename(AddressCommand):
    type: Literal["Rename"] = "Rename"
    name: str


class Enqueue(AddressCommand):
    """Send `count` slow effects to the work queue, in the command's one write."""

    type: Literal["Enqueue"] = "Enqueue"
    count: int = Field(ge=1, le=100)
    seconds: float = Field(ge=0, le=10)


class Whoami(AddressCommand):
    type: Literal["Whoami"] = "Whoami"


class NoteCreation(InternalCommand):
    """From AccountCreated: a new generation of the address begins."""

    KEY_FIELD = "address"
    type: Literal["NoteCreation"] = "NoteCreation"
    address: str
    generation: datetime


class NoteDeletion(InternalCommand):
    """From AccountDeleted: remember that the address was deleted (unless it is news of an earlier generation)."""

    KEY_FIELD = "address"
    type: Literal["NoteDeletion"] = "NoteDeletion"
    address: str
    deleted_at: datetime


class SlowEffect(WorkItem):
    QUEUE = "effects"
    type: Literal["SlowEffect"] = "SlowEffect"
    address: str
    seconds: float
