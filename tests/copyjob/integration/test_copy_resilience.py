"""Copy workers scale out and never lose or duplicate a message: three worker processes on several
jobs, one killed with SIGKILL mid-copy, every job completes exact."""

import asyncio

from services.copyjob.adapters.imap import Session
from shared.contracts.copyjob import SERVICE
from shared.registry import SERVICES
from tests.copyjob.integration.test_copy_service import (
    SOURCE_PASSWORD,
    _contents,
    _finished,
    _ours,
    _start,
    _user,
)
from tests.support import ServiceProcess, eventually


async def _big_source(address: str, port: int, per_folder: int) -> None:
    source = await Session.open("127.0.0.1", port, tls=None, server_hostname=None, user=address, password=SOURCE_PASSWORD)
    try:
        for folder in ("INBOX", "Work", "Work.Old"):
            if folder != "INBOX":
                await source.create(folder)
            for n in range(per_folder):
                body = b"Subject: %s %d\r\nMessage-ID: <%d.%s@x>\r\n\r\n" % (folder.encode(), n, n, folder.encode())
                await source.append(folder, body + b"z" * 20_000 + b"\r\n", ("\\Seen",) if n % 2 else (), str(1500000000 + n))
    finally:
        await source.close()


async def _inbox_count(address: str) -> int:
    port, password, master = _ours()
    session = await Session.open("127.0.0.1", port, tls=None, server_hostname=None, user=f"{address}*{master}", password=password)
    try:
        await session.select("INBOX", readonly=True)
        return len(await session.summaries())
    finally:
        await session.close()


async def test_a_worker_killed_mid_copy_loses_and_duplicates_nothing(client, admin_token, copyjob_service, copyjob_env,
                                                                     amqp_url, source_server, events):
    extra = [ServiceProcess(SERVICES["copyjob"], copyjob_env, amqp_url, instance=f"test-copyjob-{n}") for n in (2, 3)]
    for worker in extra:
        await worker.start()
    try:
        users = [await _user(client, admin_token, source_server) for _ in range(3)]
        await asyncio.gather(*(_big_source(address, source_server.port, 150) for address, _ in users))
        replies = [await client.request(SERVICE, _start(token, address, source_server.port)) for address, token in users]
        assert all(r.status == "accepted" for r in replies), replies

        async def copying() -> bool:
            return any([await _inbox_count(address) > 10 for address, _ in users])

        await eventually(copying, what="copies under way")
        await extra[0].kill()

        jobs = [await _finished(client, token, address, reply.result["job_id"])
                for (address, token), reply in zip(users, replies, strict=True)]
        assert [j["state"] for j in jobs] == ["completed"] * 3, jobs
        port, master_password, master = _ours()
        for address, _ in users:
            source = await _contents(address, source_server.port, SOURCE_PASSWORD)
            assert await _contents(address, port, master_password, user=f"{address}*{master}") == source
            assert sum(sum(c.values()) for c in source.values()) == 450
        progress = [e for address, _ in users for e in events.of_type("JobProgress", address=address)]
        assert progress and all(0 <= e["folder_copied"] <= e["folder_total"] for e in progress)
    finally:
        for worker in extra:
            await worker.stop()
