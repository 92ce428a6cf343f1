"""Benchmark: mailbox purge and retention passes, beside Dovecot's own doveadm on the same data in
the same run.

Purge: part 1's generated mailbox (5,000 messages in 10 folders, 554 MB) written into an account of
ours, purged by the copy job service (`PurgeMailbox` to `JobCompleted`), and the same mailbox in
another account emptied by `doveadm expunge -u ... mailbox '*' all` (the floor: no broker, no
job, no UID ranges); rounds interleaved, medians. Retention: N accounts (default 1,000) of 50
messages each (40 in INBOX, 10 in Trash), every one due at once (the bench sends the sweep's
`DueRetention` itself, as of 181 days later): accounts/s until the last pass is recorded, beside
`doveadm move ... savedbefore` and `doveadm expunge ... savedbefore` over the same accounts in
one doveadm process (`-F`).

    export MAILSS_STACK=test && scripts/stack.sh up && eval "$(scripts/stack.sh env)" && .venv/bin/python -m bench.purge_retention
"""

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymongo
from cryptography.fernet import Fernet
from faststream.rabbit import RabbitBroker

from bench.harness import PASSWORD, Bench, services
from bench.mail_copy import FOLDERS, size_of
from services.copyjob.adapters.imap import Session
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount
from shared.contracts.copyjob import SERVICE, DueRetention, GetJob, PurgeMailbox
from shared.messaging.broker import send_internal
from tests.support import eventually, imap_login

CONF = os.environ.get("DOVECOT_CONF", "")


async def ours(address: str) -> Session:
    master, password = os.environ["DOVECOT_MASTER_USER"], Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
    return await Session.open(os.environ["DOVECOT_IMAP_SOCKET"], 0, tls=None,
                              server_hostname=None, user=f"{address}*{master}", password=password)


async def accounts(bench: Bench, count: int, plan: str = "kwc") -> list[str]:
    addresses = [f"pr{uuid.uuid4().hex[:10]}@example.jp" for _ in range(count)]
    for start in range(0, count, 50):
        replies = await asyncio.gather(*(bench.client.request(ACCOUNT, CreateAccount(
            actor_token=bench.admin, address=a, plan=plan, initial_password=PASSWORD)) for a in addresses[start:start + 50]))
        assert all(r.status == "accepted" for r in replies), replies
    await eventually(lambda: imap_login(addresses[-1], PASSWORD), timeout=120, what="the last account's IMAP login")
    return addresses


async def fill_mailbox(address: str, messages: int) -> int:
    """Part 1's generated mailbox, here: -> bytes."""
    rng, total, session = random.Random(7), 0, await ours(address)
    try:
        for folder in FOLDERS[1:]:
            await session.create(folder.replace(".", "/"))
        batch: dict[str, list[tuple[bytes, tuple[str, ...], str]]] = {}
        for n in range(messages):
            size = size_of(rng)
            head = b"From: s%d@example.net\r\nSubject: message %d\r\nMessage-ID: <%d.bench@x>\r\n\r\n" % (n % 97, n, n)
            body = head + (b"0123456789abcdef" * (size // 16 + 1))[: size - len(head)]
            folder = FOLDERS[n % len(FOLDERS)].replace(".", "/")
            batch.setdefault(folder, []).append((body, ("\\Seen",), str(1300000000 + n * 3600)))
            total += len(body)
            if len(batch[folder]) == 50:
                await session.append_many(folder, batch.pop(folder))
        for folder, rest in batch.items():
            await session.append_many(folder, rest)
    finally:
        await session.close()
    return total


async def purge(bench: Bench, address: str) -> float:
    began = time.perf_counter()
    reply = await bench.client.request(SERVICE, PurgeMailbox(actor_token=bench.admin, address=address))
    assert reply.status == "accepted", reply
    query = GetJob(actor_token=bench.admin, address=address, job_id=reply.result["job_id"])
    while (job := (await bench.client.request(SERVICE, query)).result)["state"] == "running":
        await asyncio.sleep(0.02)
    assert job["state"] == "completed", job
    return time.perf_counter() - began


def doveadm(*args: str) -> float:
    began = time.perf_counter()
    done = subprocess.run(["doveadm", "-c", CONF, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    return time.perf_counter() - began


async def message_count(address: str) -> int:
    session = await ours(address)
    try:
        return sum([(await session.status(f.name, raw=True)).messages for f in await session.folders() if f.selectable])
    finally:
        await session.close()


async def purge_rounds(bench: Bench, rounds: int, messages: int) -> list[str]:
    ours_s, floor_s = [], []
    for round_ in range(rounds):
        first, second = await accounts(bench, 2)
        size = await fill_mailbox(first, messages)
        await fill_mailbox(second, messages)
        runs = [("ours", lambda a=first: purge(bench, a)),
                ("doveadm", lambda a=second: asyncio.to_thread(doveadm, "expunge", "-u", a, "mailbox", "*", "all"))]
        for name, run in runs if round_ % 2 == 0 else runs[::-1]:
            (ours_s if name == "ours" else floor_s).append(await run())
        assert await message_count(first) == 0 and await message_count(second) == 0
    ours_m, floor_m = statistics.median(ours_s), statistics.median(floor_s)
    return [f"purge of {messages} messages ({size / 1e6:.0f} MB), medians of {rounds}:",
            f"  ours (PurgeMailbox to JobCompleted)   {ours_m:6.2f} s  {messages / ours_m:7.0f} msg/s",
            f"  doveadm expunge mailbox '*' all        {floor_m:6.2f} s  {messages / floor_m:7.0f} msg/s",
            f"  ours / doveadm                          {ours_m / floor_m:6.2f}x the time"]


async def fill_retention(addresses: list[str], inbox: int = 40, trash: int = 10) -> None:
    async def one(address: str) -> None:
        session = await ours(address)
        try:
            for folder, count in (("INBOX", inbox), ("Trash", trash)):
                if count:
                    await session.append_many(folder, [(b"Subject: r %d\r\n\r\n" % n + b"x" * 2000 + b"\r\n", (),
                                                        "1300000000") for n in range(count)])
        finally:
            await session.close()

    for start in range(0, len(addresses), 8):
        await asyncio.gather(*(one(a) for a in addresses[start:start + 8]))


async def retention(bench: Bench, count: int) -> list[str]:
    addresses = await accounts(bench, count)
    await fill_retention(addresses)
    with tempfile.NamedTemporaryFile("w", suffix=".users") as users:
        users.write("\n".join(addresses) + "\n")
        users.flush()
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        began = time.perf_counter()
        doveadm("move", "-F", users.name, "Archive", "mailbox", "INBOX", "savedbefore", tomorrow)
        doveadm("expunge", "-F", users.name, "mailbox", "Trash", "savedbefore", tomorrow)
        floor = time.perf_counter() - began
        doveadm("move", "-F", users.name, "INBOX", "mailbox", "Archive", "all")  # back, for our pass
    await fill_retention(addresses, inbox=0)  # Trash again, for our pass
    jobs = pymongo.MongoClient(os.environ["MONGODB_URL"])[bench.databases["copyjob"]]["jobs"]
    broker = RabbitBroker(bench.urls["copyjob"])
    await broker.connect()
    as_of, period = datetime.now(UTC) + timedelta(days=181), int(time.time()) // 86400
    began = time.perf_counter()
    try:
        for address in addresses:
            await send_internal(broker, SERVICE, DueRetention(address=address, period=period, as_of=as_of))
        while jobs.count_documents({"retention.passes": {"$gte": 1}}) < count:
            await asyncio.sleep(0.2)
    finally:
        await broker.stop()
    seconds = time.perf_counter() - began
    moved = sum(doc["retention"]["last"]["archived"] for doc in jobs.find({"retention.passes": {"$gte": 1}}))
    assert moved == 40 * count, moved
    return [f"retention over {count} accounts of 50 messages (40 INBOX to Archive, 10 Trash expunged):",
            f"  ours (DueRetention to the last pass recorded)  {seconds:6.2f} s  {count / seconds:7.1f} accounts/s",
            f"  doveadm move + expunge savedbefore, one -F run  {floor:6.2f} s  {count / floor:7.1f} accounts/s",
            f"  ours / doveadm                                   {seconds / floor:6.2f}x the time"]


async def main(args: argparse.Namespace) -> None:
    env = {"COPY_SECRET_KEY": Fernet.generate_key().decode(), "RETENTION_SWEEP_S": "86400"}
    async with services(("account", "copyjob"), copy_workers=args.workers, extra_env=env) as bench:
        lines = await purge_rounds(bench, args.rounds, args.messages) if "purge" in args.only else []
        print("\n".join(lines), flush=True)
        lines += await retention(bench, args.accounts) if "retention" in args.only else []
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=["purge", "retention"], default=["purge", "retention"])
    asyncio.run(main(parser.parse_args()))
