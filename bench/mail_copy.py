"""Benchmark: mail copy from another IMAP server (a second Dovecot on loopback) into ours.

A generated mailbox (default 5,000 messages in 10 folders: 80% 2-20 KB, 18% 50-500 KB, 2% 1-5 MB)
is copied, each time into a fresh account: first by the baselines of the same run, mbsync (Debian's
isync, `CopyArrivalDate yes`) and Dovecot's own `doveadm backup` over imapc (the ceiling); then by
our copy job with 1, 2 and 4 workers (one job), and 4 jobs for 4 accounts at once with 4 workers.
After the last single job: its exactness (per folder: the multiset of content hashes, flags and
INTERNALDATE), a re-run with nothing new (its checkpoints skip every folder), and a re-run whose
checkpoints were deleted (every folder compared whole: it must copy nothing).

    export MAILSS_STACK=test && scripts/stack.sh up && eval "$(scripts/stack.sh env)"
    .venv/bin/python -m bench.mail_copy [--messages 5000]

mbsync is Debian's isync (`apt-get install isync`): without it that baseline is left out.
"""

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pymongo
from cryptography.fernet import Fernet

from bench.harness import PASSWORD, Bench, services
from services.copyjob.adapters.imap import Session
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount, Login
from shared.contracts.copyjob import SERVICE, GetJob, StartCopy
from tests.copyjob.integration.test_copy_service import _contents
from tests.source_server import SourceServer
from tests.support import REPO
from tests.tls_ca import make_ca

SOURCE_PASSWORD = "bench-source-1"
FOLDERS = ["INBOX", "Sent", "Archive.2019", "Archive.2020", "Projects", "Projects.A", "Projects.B", "日本語", "Lists", "Old"]


def size_of(rng: random.Random) -> int:
    pick = rng.random()
    if pick < 0.80:
        return rng.randint(2_000, 20_000)
    if pick < 0.98:
        return rng.randint(50_000, 500_000)
    return rng.randint(1_000_000, 5_000_000)


async def generate(address: str, port: int, messages: int) -> int:
    rng, total = random.Random(7), 0
    source = await Session.open("127.0.0.1", port, tls=None, server_hostname=None, user=address, password=SOURCE_PASSWORD)
    try:
        for folder in FOLDERS[1:]:
            await source.create(folder)
        for n in range(messages):
            size = size_of(rng)
            head = b"From: s%d@example.net\r\nSubject: message %d\r\nMessage-ID: <%d.bench@x>\r\n\r\n" % (n % 97, n, n)
            body = head + (b"0123456789abcdef" * (size // 16 + 1))[: size - len(head)]
            flags = tuple(f for f, p in (("\\Seen", 0.7), ("\\Flagged", 0.05), ("$Label1", 0.1)) if rng.random() < p)
            await source.append(FOLDERS[n % len(FOLDERS)], body, flags, str(1300000000 + n * 3600))
            total += len(body)
    finally:
        await source.close()
    return total


async def account(bench: Bench, server: SourceServer) -> tuple[str, str]:
    address = f"cb{uuid.uuid4().hex[:8]}@example.jp"
    reply = await bench.client.request(ACCOUNT, CreateAccount(actor_token=bench.admin, address=address, plan="kwc",
                                                              initial_password=PASSWORD))
    assert reply.status == "accepted", reply
    await server.add_user(address, SOURCE_PASSWORD)
    while (login := await bench.client.request(ACCOUNT, Login(login=address, password=PASSWORD))).status != "accepted":
        await asyncio.sleep(0.2)
    return address, login.result["token"]


async def copy(bench: Bench, users: list[tuple[str, str]], port: int, *, copied: int | None = None) -> float:
    """Seconds from StartCopy to the last job's end (`copied`: each job must have copied that many)."""
    began = time.perf_counter()
    jobs = []
    for address, token in users:
        reply = await bench.client.request(SERVICE, StartCopy(
            actor_token=token, address=address, current_password=PASSWORD, source_host="127.0.0.1", source_port=port,
            source_security="plain", source_password=SOURCE_PASSWORD, notification_address="me@example.net"))
        assert reply.status == "accepted", reply
        jobs.append((address, token, reply.result["job_id"]))
    for address, token, job_id in jobs:
        query = GetJob(actor_token=token, address=address, job_id=job_id)
        while (job := (await bench.client.request(SERVICE, query)).result)["state"] == "running":
            await asyncio.sleep(0.05)
        assert job["state"] == "completed", job
        assert copied is None or job["totals"]["copied"] == copied, job["totals"]
    return time.perf_counter() - began


def clone_source(server: SourceServer, template: str, address: str) -> None:
    shutil.rmtree(server.maildir(address), ignore_errors=True)
    shutil.copytree(server.maildir(template), server.maildir(address), symlinks=True)
    subprocess.run(["chown", "-R", "vmail:vmail", str(server.maildir(address))], check=True)


def mbsync(address: str, port: int, folder: Path) -> float | None:
    if shutil.which("mbsync") is None:
        return None
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = folder / "mbsyncrc"
    config.write_text(f"""IMAPAccount source
Host 127.0.0.1
Port {port}
User {address}
Pass {SOURCE_PASSWORD}
SSLType None

IMAPStore source
Account source

IMAPAccount target
Host 127.0.0.1
Port {os.environ.get("DOVECOT_IMAP_PORT", "10143")}
User {address}
Pass {PASSWORD}
SSLType None

IMAPStore target
Account target

Channel copy
Far :source:
Near :target:
Patterns {" ".join(f'"{f.replace(".", "/")}"' for f in FOLDERS)}
Create Near
Sync Pull
CopyArrivalDate yes
SyncState {folder}/
""")
    began = time.perf_counter()
    done = subprocess.run(["mbsync", "-c", str(config), "-q", "copy"], capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        print(f"mbsync failed: {done.stderr[-500:]}")
        return None
    return elapsed


def doveadm_backup(address: str, port: int) -> float | None:
    """The ceiling: Dovecot's own dsync pulling over IMAP (imapc) into the account here."""
    options = {"imapc_host": "127.0.0.1", "imapc_port": str(port), "imapc_user": address, "imapc_password": SOURCE_PASSWORD,
               "imapc_features": "rfc822.size fetch-headers", "mail_prefetch_count": "20", "imapc_ssl": "no"}
    command = ["doveadm", "-c", os.environ["DOVECOT_CONF"], *(x for k, v in options.items() for x in ("-o", f"{k}={v}")),
               "backup", "-R", "-u", address, "imapc:"]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        print(f"doveadm backup failed ({done.returncode}): {done.stderr[-500:]}")
        return None
    return elapsed


def line(label: str, seconds: float, messages: int, size: int, baselines: dict[str, float]) -> str:
    """`baselines`: name -> messages/s."""
    ratios = "".join(f"  {messages / seconds / rate:5.2f}x {name}" for name, rate in baselines.items())
    return f"{label:<46} {seconds:7.2f} s  {messages / seconds:7.1f} msg/s  {size / seconds / 1e6:6.1f} MB/s{ratios}"




async def _template(bench: Bench, server: SourceServer, messages: int) -> tuple[str, int]:
    """The generated source mailbox, cloned for every run."""
    template, _ = await account(bench, server)
    began = time.perf_counter()
    size = await generate(template, server.port, messages)
    print(f"generated {messages} messages, {size / 1e6:.0f} MB, in {time.perf_counter() - began:.0f} s")
    return template, size


async def _baselines(bench: Bench, server: SourceServer, template: str) -> list[tuple[str, float]]:
    """mbsync and doveadm backup, each into an account of its own."""
    timed = []
    for name, tool in (("mbsync", lambda a: mbsync(a, server.port, REPO / ".run" / "bench-mbsync")),
                       ("doveadm", lambda a: doveadm_backup(a, server.port))):
        address, _ = await account(bench, server)
        clone_source(server, template, address)
        if (seconds := tool(address)) is not None:
            timed.append((name, seconds))
    return timed


async def _reruns(bench: Bench, server: SourceServer, address: str, token: str, runs: dict[str, list[float]]) -> list[str]:
    """Exactness, then a re-run with nothing new, then one whose checkpoints were lost (both copy nothing)."""
    socket_path, master = os.environ["DOVECOT_IMAP_SOCKET"], os.environ["DOVECOT_MASTER_USER"]
    password = Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
    exact = await _contents(address, socket_path, password, user=f"{address}*{master}") == await _contents(
        address, server.port, SOURCE_PASSWORD)
    runs["re-run with nothing new"].append(await copy(bench, [(address, token)], server.port, copied=0))
    jobs = pymongo.MongoClient(os.environ["MONGODB_URL"])[bench.databases["copyjob"]]["jobs"]
    assert jobs.update_one({"_id": address}, {"$set": {"marks": {}}}).matched_count == 1
    runs["re-run with its checkpoints lost (copies 0)"].append(await copy(bench, [(address, token)], server.port, copied=0))
    return [f"exact copy: {exact}"]


async def main(args: argparse.Namespace) -> None:
    ca = make_ca(REPO / ".run" / "bench-ca")
    server = await SourceServer.start(REPO / ".run" / "bench-source", ca[1], ca[2])
    env = {"COPY_SECRET_KEY": Fernet.generate_key().decode(), "ALLOWED_SOURCE_NETWORKS": '["127.0.0.1/32"]',
           "ALLOW_PLAIN_SOURCES": "true", "MAX_MESSAGE_BYTES": str(100 * 1024 * 1024)}
    runs: dict[str, list[float]] = defaultdict(list)
    """seconds per run, by what ran (messages copied: the label's factor times --messages)"""
    checks: list[str] = []
    template, size = "", 0
    try:
        for round_ in range(args.rounds):  # every tool once per round: a noisy spell hits them alike
            for workers in args.workers:
                async with services(("account", "copyjob"), copy_workers=workers, extra_env=env) as bench:
                    if not template:
                        template, size = await _template(bench, server, args.messages)
                    if workers == args.workers[0]:
                        for name, seconds in await _baselines(bench, server, template):
                            runs[name].append(seconds)
                    address, token = await account(bench, server)
                    clone_source(server, template, address)
                    runs[f"ours, one job, {workers} worker(s)"].append(
                        await copy(bench, [(address, token)], server.port, copied=args.messages))
                    if workers == args.workers[-1]:
                        checks += await _reruns(bench, server, address, token, runs)
                        users = [await account(bench, server) for _ in range(4)]
                        for user, _ in users:
                            clone_source(server, template, user)
                        runs[f"ours, 4 jobs at once, {workers} workers"].append(
                            await copy(bench, users, server.port, copied=args.messages))
            print(f"round {round_ + 1} of {args.rounds} done", flush=True)
    finally:
        server.stop()
    print(report(runs, args.messages, size))
    print("\n".join(checks))


def report(runs: dict[str, list[float]], messages: int, size: int) -> str:
    """Medians, and each rate's ratio to the baselines' median rates."""
    medians = {name: statistics.median(seconds) for name, seconds in runs.items()}
    factor = {name: 4 if "4 jobs" in name else 1 for name in runs}
    baselines = {name: messages / medians[name] for name in ("mbsync", "doveadm") if name in medians}
    lines = [f"medians of {len(next(iter(runs.values())))} run(s)"]
    for name, seconds in medians.items():
        if name.startswith("re-run"):
            lines.append(f"{name:<46} {seconds:7.2f} s")
        else:
            lines.append(line(name, seconds, factor[name] * messages, factor[name] * size,
                              {} if name in baselines else baselines))
    return "\n".join(lines)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
