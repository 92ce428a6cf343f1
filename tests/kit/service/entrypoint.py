"""The test service's composition root: handlers over the unit of work, one reaction, one work queue."""

import asyncio
import os
from contextlib import suppress
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.auth import InvalidToken
from shared.contracts.account import AccountCreated, AccountDeleted
from shared.contracts.base import Accepted, Rejected
from shared.generations import of_earlier_generation
from shared.messaging.service import Resources, ServiceSpec, Wiring
from shared.messaging.unit_of_work import UnitOfWork
from shared.sessions import SessionGuard
from shared.settings import ServiceSettings
from tests.kit.service.contracts import (
    SERVICE,
    Bump,
    Enqueue,
    NoteCreation,
    NoteDeletion,
    Rename,
    SlowEffect,
    Whoami,
)


class KitServiceSettings(ServiceSettings):
    mongodb_db: str = "mailss_kitsvc"


def _state(unit: UnitOfWork) -> dict[str, Any]:
    return unit.state or {}


async def bump(command: Bump, unit: UnitOfWork) -> Accepted:
    await asyncio.sleep(command.pause_s)
    count = _state(unit).get("count", 0) + 1
    unit.stage({"count": count, "bumped_by": [*_state(unit).get("bumped_by", []), os.environ["INSTANCE"]]})
    return Accepted(command_id=command.message_id, result={"count": count})


async def rename(command: Rename, unit: UnitOfWork) -> Accepted:
    unit.stage({"name": command.name})
    return Accepted(command_id=command.message_id)


async def enqueue(command: Enqueue, unit: UnitOfWork) -> Accepted:
    items = [SlowEffect(address=command.address, seconds=command.seconds) for _ in range(command.count)]
    unit.stage({"enqueued": _state(unit).get("enqueued", 0) + command.count}, work=items)
    return Accepted(command_id=command.message_id, result={"items": [str(item.message_id) for item in items]})


async def note_creation(command: NoteCreation, unit: UnitOfWork) -> Accepted:
    unit.stage({"generation": command.generation})
    return Accepted(command_id=command.message_id)


async def note_deletion(command: NoteDeletion, unit: UnitOfWork) -> Accepted:
    if not of_earlier_generation(command.deleted_at, _state(unit).get("generation")):
        unit.stage({"deletions": _state(unit).get("deletions", 0) + 1})
    return Accepted(command_id=command.message_id)


def whoami(sessions: SessionGuard) -> Any:
    async def handle(command: Whoami, unit: UnitOfWork) -> Accepted | Rejected:
        try:
            actor = await sessions.actor(command.actor_token)
        except InvalidToken as error:
            return Rejected(command_id=command.message_id, code="unauthenticated", message=str(error))
        return Accepted(command_id=command.message_id, result={"subject": actor.subject})
    return handle


def slow_effect(database: AsyncDatabase) -> Any:
    """Records where each delivery started, then, after `seconds`, the effect keyed by the item's id."""
    async def handle(item: SlowEffect) -> None:
        item_id, instance = str(item.message_id), os.environ["INSTANCE"]
        await database["deliveries"].insert_one({"item": item_id, "instance": instance})
        await asyncio.sleep(item.seconds)
        with suppress(DuplicateKeyError):  # done before a crash lost the ack: the effect stays single
            await database["effects"].insert_one({"_id": item_id, "instance": instance})
    return handle


def compose(settings: KitServiceSettings, kit: Resources) -> Wiring:
    return Wiring(
        handlers={Bump: bump, Rename: rename, Enqueue: enqueue, NoteCreation: note_creation,
                  NoteDeletion: note_deletion, Whoami: whoami(kit.sessions)},
        aggregates="counters",
        reactions={
            AccountCreated: lambda event: [NoteCreation(address=event.address, generation=event.occurred_at)],
            AccountDeleted: lambda event: [NoteDeletion(address=event.address, deleted_at=event.occurred_at)],
        },
        work={SlowEffect: slow_effect(kit.database)},
    )


SPEC = ServiceSpec(name=SERVICE, settings=KitServiceSettings,
                   commands=(Bump, Rename, Enqueue, Whoami, NoteCreation, NoteDeletion), compose=compose)
