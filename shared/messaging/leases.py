"""Work leases: two deliveries of one work item never run at the same time, in any process.

A work item can be in its queue twice: the broker hands back the delivery of a worker that died
while an outbox relays the item again (a relayed entry leaves the outbox only with the aggregate's
next write, and a crash or a restart forgets what was relayed). Handlers are idempotent one after
another, but not side by side: two copies of one chunk would both find its messages missing and
both append them. So a worker holds the item's lease in the service's database while it runs it.

FerretDB v1 has no atomic conditional update, but an insert of an `_id` is atomic: the lease of
an item is a row per *generation* (`<item>#<n>`), and taking over is inserting generation n+1,
which one worker wins. The holder beats (counts up) every third of `lease_s`; a waiter judges a
holder gone when the beat has not moved for `lease_s` of its own clock (no clocks compared across
hosts), or at once when the holder let go. A finished item's row says so: a later copy of the item
is acked without running. A holder that stalls past its lease sees the next generation and stops.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

log = logging.getLogger(__name__)

LEASES = "work_leases"
KEPT_FOR = timedelta(days=1)
"""rows older than this go (a copy of an item later still is run again: handlers are idempotent)"""
T = TypeVar("T")


class Superseded(Exception):
    """This worker stalled past its lease and another one took the item over."""


class NoLongerWanted(Exception):
    """The delivery waiting for the lease is gone (its channel closed): the broker hands it out again."""


def new_holder(instance: str) -> str:
    return f"{instance}/{uuid.uuid4().hex[:8]}"


@dataclass
class _Watch:
    """What a waiter saw of a lease row: its beat, and since when (monotonic) it has not moved."""

    key: str = ""
    beat: int = -1
    since: float = 0.0

    def silent_for(self, key: str, beat: int, now: float) -> float:
        if (key, beat) != (self.key, self.beat):
            self.key, self.beat, self.since = key, beat, now
        return now - self.since


@dataclass(frozen=True)
class WorkLeases:
    collection: AsyncCollection[dict[str, Any]]
    holder: str
    lease_s: float
    clock: Callable[[], float] = field(default=time.monotonic)

    async def acquire(self, item_id: str, *, wanted: Callable[[], bool]) -> "Lease | None":
        """The item's lease, waiting while another worker holds it; None: the item was done."""
        generation, watch = 0, _Watch()
        while True:
            key = f"{item_id}#{generation}"
            if await self._insert(key):
                return Lease(self, item_id, generation)
            row = await self.collection.find_one({"_id": key})
            if row is None:
                continue  # removed meanwhile (an old row's clean-up): try again
            if row["state"] == "done":
                return None
            if row["state"] == "released" or watch.silent_for(key, row["beat"], self.clock()) > self.lease_s:
                generation += 1
                continue
            if not wanted():
                raise NoLongerWanted
            await asyncio.sleep(self.lease_s / 6)

    async def _insert(self, key: str) -> bool:
        try:
            await self.collection.insert_one({"_id": key, "holder": self.holder, "state": "held", "beat": 0,
                                              "at": datetime.now(UTC)})
        except DuplicateKeyError:
            return False
        return True

    async def remove_old(self) -> int:
        """Rows untouched for KEPT_FOR (a day); an hourly clean-up, scanning the collection once."""
        removed = await self.collection.delete_many({"at": {"$lt": datetime.now(UTC) - KEPT_FOR}})
        return removed.deleted_count

    async def clean_up_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.remove_old()
            except PyMongoError as error:  # the next round tries again
                log.warning("work lease clean-up postponed: %s", type(error).__name__)


@dataclass(frozen=True)
class Lease:
    leases: WorkLeases
    item_id: str
    generation: int

    @property
    def key(self) -> str:
        return f"{self.item_id}#{self.generation}"

    async def hold(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run `work` while beating; stop it if another worker took the item over (`Superseded`).
        Failed or cancelled: the lease is let go at once. Then `done()` records it finished."""
        running: asyncio.Task[T] = asyncio.create_task(work())
        beating = asyncio.create_task(self._beat_until_superseded())
        try:
            await asyncio.wait({running, beating}, return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                raise Superseded(f"work item {self.item_id} was taken over by another worker")
            result = running.result()
        except BaseException:
            await self._let_go(running)
            raise
        finally:
            beating.cancel()
        return result

    async def done(self) -> None:
        await self._set({"state": "done"})

    async def _let_go(self, running: asyncio.Task[Any]) -> None:
        running.cancel()
        with suppress(BaseException):
            await running
        with suppress(PyMongoError):
            await self._set({"state": "released"})

    async def _beat_until_superseded(self) -> None:
        following = f"{self.item_id}#{self.generation + 1}"
        beat = 0
        while True:
            await asyncio.sleep(self.leases.lease_s / 3)
            beat += 1
            try:
                await self._set({"beat": beat})
                if await self.leases.collection.find_one({"_id": following}, {"_id": 1}):
                    log.warning("work item %s: another worker took it over (this one stalled)", self.item_id)
                    return
            except PyMongoError as error:  # the work may go on; a waiter takes over if this lasts
                log.warning("work item %s: lease not renewed (%s)", self.item_id, type(error).__name__)

    async def _set(self, fields: dict[str, Any]) -> None:
        await self.leases.collection.update_one({"_id": self.key}, {"$set": {**fields, "at": datetime.now(UTC)}})
