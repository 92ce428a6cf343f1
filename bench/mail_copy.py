"""Benchmark: mail copy from another IMAP server (a second Dovecot on loopback) into ours.

A generated mailbox (default 5,000 messages in 10 folders: 80% 2-20 KB, 18% 50-500 KB, 2% 1-5 MB)
is copied by our copy job with 1, 2 and 4 workers (one job), then 4 jobs for 4 accounts at once with
4 workers; in the same run the same copy with mbsync (Debian's isync, `CopyArrivalDate yes`) when it
is installed. Exactness is checked after each of our runs (per folder: the multiset of content
hashes, flags and INTERNALDATE); then a re-run with nothing to copy, which is also what a job that
lost its records costs (a step compares both sides, it keeps no per-message record).

    scripts/stack.sh up && eval "$(scripts/stack.sh env)" && .venv/bin/python bench/mail_copy.py [--messages 5000]
"""

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import time
import uuid
from pathlib import Path

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


async def copy(bench: Bench, users: list[tuple[str, str]], port: int) -> float:
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
    return time.perf_counter() - began


def clone_source(server: SourceServer, template: str, address: str) -> None:
    shutil.rmtree(server.maildir(address), ignore_errors=True)
    shutil.copytree(server.maildir(template), server.maildir(address), symlinks=True)
    subprocess.run(["chown", "-R", "vmail:vmail", str(server.maildir(address))], check=True)


def mbsync(address: str, port: int, folder: Path) -> float | None:
    if shutil.which("mbsync") is None:
        return None
    master, password = os.environ["DOVECOT_MASTER_USER"], Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
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
User {address}*{master}
Pass {password}
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


def line(label: str, seconds: float, messages: int, size: int, baseline_rate: float | None = None) -> str:
    ratio = f"  {messages / seconds / baseline_rate:5.2f}x mbsync's rate" if baseline_rate else ""
    return f"{label:<46} {seconds:7.2f} s  {messages / seconds:7.1f} msg/s  {size / seconds / 1e6:6.1f} MB/s{ratio}"


async def main(args: argparse.Namespace) -> None:
    ca = make_ca(REPO / ".run" / "bench-ca")
    server = await SourceServer.start(REPO / ".run" / "bench-source", ca[1], ca[2])
    env = {"COPY_SECRET_KEY": Fernet.generate_key().decode(), "ALLOWED_SOURCE_NETWORKS": '["127.0.0.1/32"]',
           "ALLOW_PLAIN_SOURCES": "true", "MAX_MESSAGE_BYTES": str(100 * 1024 * 1024)}
    results: list[str] = []
    try:
        for workers in args.workers:
            async with services(("account", "copyjob"), copy_workers=workers, extra_env=env) as bench:
                template, template_token = await account(bench, server)
                if workers == args.workers[0]:
                    began = time.perf_counter()
                    size = await generate(template, server.port, args.messages)
                    print(f"generated {args.messages} messages, {size / 1e6:.0f} MB, in {time.perf_counter() - began:.0f} s")
                    base_template = template
                    mbsync_s = mbsync(template, server.port, REPO / ".run" / "bench-mbsync")
                    if mbsync_s:
                        results.append(line("mbsync (isync), one account", mbsync_s, args.messages, size))
                    template, template_token = await account(bench, server)
                clone_source(server, base_template, template)
                seconds = await copy(bench, [(template, template_token)], server.port)
                rate = args.messages / mbsync_s if mbsync_s else None
                results.append(line(f"ours, one job, {workers} worker(s)", seconds, args.messages, size, rate))
                if workers == args.workers[-1]:
                    port, master = int(os.environ.get("DOVECOT_IMAP_PORT", "10143")), os.environ["DOVECOT_MASTER_USER"]
                    password = Path(os.environ["DOVECOT_MASTER_PASSWORD_FILE"]).read_text().strip()
                    exact = await _contents(template, port, password, user=f"{template}*{master}") == await _contents(
                        template, server.port, SOURCE_PASSWORD)
                    results.append(f"exact copy: {exact}")
                    again = await copy(bench, [(template, template_token)], server.port)
                    results.append(f"{'re-run with nothing to copy':<46} {again:7.2f} s")
                    users = [await account(bench, server) for _ in range(4)]
                    for address, _ in users:
                        clone_source(server, base_template, address)
                    seconds = await copy(bench, users, server.port)
                    results.append(line(f"ours, 4 jobs at once, {workers} workers", seconds, 4 * args.messages, 4 * size, rate))
    finally:
        server.stop()
    print("\n".join(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    asyncio.run(main(parser.parse_args()))
