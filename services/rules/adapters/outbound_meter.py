#!/usr/bin/python3 -IS
"""The outbound meter: what an account sent out in the last hour (forwarded copies, autoreplies,
counted in messages: a forward to 300 destinations is 300) and what it held back over its limit.

One file, both sides of one format. Dovecot's Sieve runs it as the program `mailss-outbound`
(vnd.dovecot.execute; as the mail user, with USER = the account) before each redirect and each
autoreply: `mailss-outbound <messages> <limit an hour>` exits 0 when they fit in the last hour (they
count as sent) and 1 when they do not (they count as held, the message stays in the mailbox, and a
line on stderr reaches Dovecot's log). The rules service reads the same files (GetRules). Only the
standard library: the program runs outside the project's environment.

A meter is one small JSON document per account, in the folder `outbound/` beside the program's
`sieve-execute/` (the mail user's, readable by the group of the services that act in mailboxes).
It is rewritten in place under an exclusive lock, new text first and the old tail cut after, and read
back by its first JSON value: a writer killed midway leaves either the old counts or the new ones.
Meters idle for two hours are swept now and then (deleted accounts leave theirs behind).
"""

import fcntl
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import NamedTuple

PROGRAM = "mailss-outbound"
WINDOW_MINUTES = 60
MAX_MESSAGES = 100_000
"""arguments beyond these are not ours: refused (the message is kept)"""
MAX_LIMIT = 10_000_000
HELD = 1
BROKEN = 2
IDLE_AFTER_S = 2 * 3600
SWEEP_ONE_IN = 512
SWEEP_BUDGET_S = 1.0
"""one call in this many also sweeps the folder: about one scan of it per 512 forwards and replies"""


class Usage(NamedTuple):
    sent: int = 0
    held: int = 0
    limit: int | None = None
    """the limit the mail server applied last (None: nothing sent yet)"""
    last_held_at: float | None = None


def meter_path(folder: Path, address: str) -> Path:
    """The address never names a file: its hash does (any character, any length)."""
    return folder / (hashlib.sha256(address.lower().encode()).hexdigest()[:32] + ".json")


def _minute(now: float) -> int:
    return int(now // 60)


def _recent(counts: object, now: float) -> dict[str, int]:
    """Per-minute counts of the last hour; anything malformed counts as nothing."""
    if not isinstance(counts, dict):
        return {}
    oldest = _minute(now) - WINDOW_MINUTES
    return {k: v for k, v in counts.items()
            if k.isdigit() and int(k) > oldest and isinstance(v, int) and v > 0}


def _parsed(text: str) -> dict[str, object]:
    try:
        state, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def usage_in(state: dict[str, object], now: float) -> Usage:
    limit, last_held = state.get("limit"), state.get("last_held")
    return Usage(sent=sum(_recent(state.get("sent"), now).values()), held=sum(_recent(state.get("held"), now).values()),
                 limit=limit if isinstance(limit, int) else None,
                 last_held_at=last_held if isinstance(last_held, (int, float)) else None)


def counted(state: dict[str, object], messages: int, limit: int, now: float) -> tuple[dict[str, object], bool]:
    """The state after `messages` more asked to go out, and whether they may."""
    sent, held = _recent(state.get("sent"), now), _recent(state.get("held"), now)
    fits = sum(sent.values()) + messages <= limit
    into, minute = (sent if fits else held), str(_minute(now))
    into[minute] = into.get(minute, 0) + messages
    after: dict[str, object] = {"limit": limit, "sent": sent, "held": held, "last_held": state.get("last_held")}
    if not fits:
        after["last_held"] = now
    return after, fits


def read_usage(folder: Path, address: str, now: float | None = None) -> Usage:
    try:
        with open(meter_path(folder, address), encoding="utf-8", errors="replace") as meter:
            fcntl.flock(meter, fcntl.LOCK_SH)
            text = meter.read()
    except FileNotFoundError:
        return Usage()
    except OSError as error:  # unreadable (the folder's group not ours): nothing known, and ops are told
        import logging  # the rules service's side only: the program starts without it

        logging.getLogger(__name__).warning("outbound meter of %s unreadable: %s", address, error)
        return Usage()
    return usage_in(_parsed(text), time.time() if now is None else now)


def ask(folder: Path, address: str, messages: int, limit: int, now: float) -> bool:
    fd = _locked(meter_path(folder, address))
    try:
        os.fchmod(fd, 0o640)  # the delivery's umask would leave the rules service out
        state, fits = counted(_parsed(os.read(fd, 1 << 20).decode("utf-8", "replace")), messages, limit, now)
        text = json.dumps(state, separators=(",", ":")).encode()
        os.pwrite(fd, text, 0)
        os.ftruncate(fd, len(text))
        return fits
    finally:
        os.close(fd)


def _locked(path: Path) -> int:
    """The meter, open and exclusively locked, still in its folder (a sweep may have taken the one
    opened before the lock came)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return fd
        os.close(fd)


def sweep(folder: Path, now: float) -> int:
    """Meters untouched for IDLE_AFTER_S hold nothing of the last hour (deleted accounts' among
    them): they go, unless someone holds one at that moment. -> how many went."""
    removed, stop_at = 0, time.monotonic() + SWEEP_BUDGET_S
    for entry in os.scandir(folder):
        if time.monotonic() > stop_at:
            break  # within the delivery's wait for the meter; the next sweep goes on
        try:
            if not entry.name.endswith(".json") or entry.stat().st_mtime > now - IDLE_AFTER_S:
                continue
            fd = os.open(entry.path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = os.fstat(fd)
            if held.st_nlink and held.st_mtime <= now - IDLE_AFTER_S:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass  # in use (or gone): it stays for the next sweep
        finally:
            os.close(fd)
    return removed


class OutboundMeters:
    """The rules service's side (GetRules): what an account sent out and held in the last hour;
    `per_hour`, the service's setting, is shown until the mail server has applied a limit of its own."""

    def __init__(self, folder: Path, per_hour: int) -> None:
        self.folder, self.per_hour = folder, per_hour

    async def view(self, address: str) -> dict[str, object]:
        import asyncio  # the rules service's side only: a delivery waits for the program's start (47 ms less)
        from datetime import UTC, datetime

        usage = await asyncio.to_thread(read_usage, self.folder, address)
        held_at = usage.last_held_at
        return {"per_hour": usage.limit or self.per_hour, "sent_last_hour": usage.sent, "held_last_hour": usage.held,
                "last_held_at": None if held_at is None else datetime.fromtimestamp(held_at, UTC).isoformat()}


def _arguments(argv: list[str]) -> tuple[int, int] | None:
    if len(argv) != 3 or not all(a.isascii() and a.isdigit() for a in argv[1:]):
        return None
    messages, limit = int(argv[1]), int(argv[2])
    return (messages, limit) if 0 < messages <= MAX_MESSAGES and 0 < limit <= MAX_LIMIT else None


def main(argv: list[str], environ: dict[str, str]) -> int:
    address, asked = environ.get("USER", ""), _arguments(argv)
    if not address or asked is None:
        print(f"{PROGRAM}: called without an account or with {argv[1:]!r}: nothing sent", file=sys.stderr)
        return BROKEN
    messages, limit = asked
    folder = Path(os.path.abspath(argv[0])).parent.parent / "outbound"  # beside sieve-execute/, links not followed
    now = time.time()
    fits = ask(folder, address, messages, limit, now)
    if random.randrange(SWEEP_ONE_IN) == 0:
        sweep(folder, now)
    if fits:
        return 0
    print(f"{PROGRAM}: {address} is over its {limit} messages an hour: {messages} held "
          "(kept in the mailbox, not sent)", file=sys.stderr)
    return HELD


if __name__ == "__main__":
    sys.exit(main(sys.argv, dict(os.environ)))
