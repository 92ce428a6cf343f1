"""Work leases: two deliveries of one work item never run at the same time, in any process.

A work item can be in its queue twice: the broker hands back the delivery of a worker that died
while an outbox relays the item again (a relayed entry leaves the outbox only with the aggregate's
next write, and a crash or a restart forgets what was relayed). Handlers are idempotent one after
another, but not side by side: two copies of one chunk would both find its messages missing and
both append them. So a worker holds the item's lease in the service's database while it runs it.

FerretDB v1 has no atomic conditional update (an update reads, modifies and writes the whole row
without a lock), but an insert of an `_id` is atomic. So every row has one writer or is written
once: the lease of an item is a row per *generation* (`<item>#<n>`), which only its holder's beat
updates; taking over is inserting generation n+1, which one worker wins; how a generation ended
(`done`, `released`) is a row of its own (`<item>#<n>.end`), inserted once.

The holder beats every `lease_s`/6. A waiter judges a holder gone when its beat has not moved for
`lease_s` on the waiter's own clock (no clocks compared across hosts), or at once when it let go.
A holder that could not beat for 2/3 of `lease_s` stops its work before any waiter can take over;
so does a holder whose delivery is gone (the broker hands the item out again) and one that finds
the next generation. A later copy of a finished item is acked without running.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

import pymongo
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

log = logging.getLogger(__name__)

LEASES = "work_leases"
KEPT_FOR = timedelta(days=1)
"""an item's rows go once none was touched for this long (a copy later still runs again: handlers
are idempotent one after another)"""
GIVE_UP_AFTER = 2 / 3
"""of `lease_s` without a beat stored: the holder stops before a waiter (after all of it) takes over"""
T = TypeVar("T")
Wanted = Callable[[], bool]


class Superseded(Exception):
    """This worker stalled past its lease and another one took the item over."""


class NoLongerWanted(Exception):
    """The delivery behind this copy is gone (its channel closed): the broker hands it out again."""


class LeaseLost(ConnectionError):
    """The database did not take the holder's beats for too long: the work stopped, try again."""


class Ended(Enum):
    DONE = "done"
    RELEASED = "released"


def new_holder(instance: str) -> str:
    return f"{instance}/{uuid.uuid4().hex[:8]}"


def lease_id(item_id: str, generation: int) -> str:
    return f"{item_id}#{generation}"


def end_id(item_id: str, generation: int) -> str:
    return f"{lease_id(item_id, generation)}.end"


def _item_of(row_id: str) -> str:
    return row_id.partition("#")[0]


@dataclass
class _Watch:
    """What a waiter saw of a lease row: its beat, and since when (its own clock) it has not moved."""

    key: str = ""
    beat: int = -1
    since: float = 0.0

    def observe(self, key: str, beat: int, now: float) -> float:
        """-> for how long the beat has stood still."""
        if (key, beat) != (self.key, self.beat):
            self.key, self.beat, self.since = key, beat, now
        return now - self.since


@dataclass(frozen=True)
class WorkLeases:
    collection: AsyncCollection[dict[str, Any]]
    holder: str
    lease_s: float
    clock: Callable[[], float] = field(default=time.monotonic)

    async def acquire(self, item_id: str, *, wanted: Wanted) -> "Lease | None":
        """The item's lease, waiting while another worker holds it; None: the item was done."""
        generation, watch = 0, _Watch()
        while True:
            if await self._insert(lease_id(item_id, generation), beat=0, holder=self.holder):
                return Lease(self, item_id, generation)
            ended = await self.collection.find_one({"_id": end_id(item_id, generation)})
            if ended is not None and ended["state"] == Ended.DONE.value:
                return None
            row = await self.collection.find_one({"_id": lease_id(item_id, generation)})
            if row is None:
                continue  # removed meanwhile (an old item's clean-up): try again
            if ended is not None or watch.observe(row["_id"], row["beat"], self.clock()) > self.lease_s:
                generation += 1
                continue
            if not wanted():
                raise NoLongerWanted
            await asyncio.sleep(self.lease_s / 6)

    async def _insert(self, key: str, **fields: Any) -> bool:
        try:
            await self.collection.insert_one({"_id": key, **fields, "at": datetime.now(UTC)})
        except DuplicateKeyError:
            return False
        return True

    async def remove_old(self) -> int:
        """Rows of items none of whose rows was touched within KEPT_FOR; an hourly clean-up."""
        cutoff = datetime.now(UTC) - KEPT_FOR
        old = [row["_id"] async for row in self.collection.find({"at": {"$lt": cutoff}}, {"_id": 1})]
        alive = {_item_of(row["_id"]) async for row in self.collection.find({"at": {"$gte": cutoff}}, {"_id": 1})}
        gone = [key for key in old if _item_of(key) not in alive]
        return (await self.collection.delete_many({"_id": {"$in": gone}})).deleted_count if gone else 0

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

    async def hold(self, work: Callable[[], Coroutine[Any, Any, T]], *, wanted: Wanted) -> T:
        """Run `work` while beating. It is stopped when another worker took the item over
        (`Superseded`), when this copy's delivery is gone (`NoLongerWanted`) or when the beats are
        not stored (`LeaseLost`). Failed, stopped or cancelled: the lease is let go. Then `done()`."""
        running: asyncio.Task[T] = asyncio.create_task(work())
        stop = asyncio.Event()
        beating = asyncio.create_task(self._beat(stop, wanted))
        try:
            await asyncio.wait({running, beating}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # cancelled too
            stop.set()
            await asyncio.wait({beating})  # a beat in flight is stored before anything else is written
            if not running.done():
                running.cancel()
                await asyncio.wait({running})
            if running.cancelled() or running.exception() is not None:
                await self._end(Ended.RELEASED)
        if running.cancelled():  # stopped by the beat: say why
            raise (beating.result() or LeaseLost)(f"work item {self.item_id}: the lease ended")
        return running.result()

    async def done(self) -> None:
        await self._end(Ended.DONE)

    async def _end(self, how: Ended) -> None:
        try:
            await self.leases._insert(end_id(self.item_id, self.generation), state=how.value)
        except PyMongoError:
            if how is Ended.DONE:
                raise
            log.warning("work item %s: could not record its lease let go; a waiter takes over after it", self.item_id)

    async def _beat(self, stop: asyncio.Event, wanted: Wanted) -> type[Exception] | None:
        """Beats until `stop`; -> what ended the lease instead (an exception class to raise)."""
        every, clock = self.leases.lease_s / 6, self.leases.clock
        beat, last_stored = 0, clock()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
                return None
            except TimeoutError:
                pass
            if not wanted():
                return NoLongerWanted
            started, beat = clock(), beat + 1
            try:
                with pymongo.timeout(every):
                    await self.leases.collection.update_one({"_id": lease_id(self.item_id, self.generation)},
                                                            {"$set": {"beat": beat, "at": datetime.now(UTC)}})
                    if await self.leases.collection.find_one({"_id": lease_id(self.item_id, self.generation + 1)}):
                        log.warning("work item %s: another worker took it over (this one stalled)", self.item_id)
                        return Superseded
                last_stored = started
            except PyMongoError as error:
                log.warning("work item %s: lease not renewed (%s)", self.item_id, type(error).__name__)
            if clock() - last_stored >= self.leases.lease_s * GIVE_UP_AFTER:
                return LeaseLost
        return None
