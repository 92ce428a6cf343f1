"""Copy workers scale out and never lose or duplicate a message: three worker processes on several
jobs, one killed with SIGKILL mid-copy, every job completes exact; so does a job through a broker
restart and through the source dropping the connection."""

import asyncio

from services.copyjob.adapters.imap import Session
from shared.client import CommandClient
from shared.contracts.copyjob import SERVICE, GetJob
from shared.registry import SERVICES
from tests.copyjob.integration.test_copy_service import (
    SOURCE_PASSWORD,
    _contents,
    _finished,
    _ours_contents,
    _start,
    _user,
)
from tests.support import ServiceProcess, eventually, ours_session, rabbitmqctl


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
    session = await ours_session(address)
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
        for address, _ in users:
            source = await _contents(address, source_server.port, SOURCE_PASSWORD)
            assert await _ours_contents(address) == source
            assert sum(sum(c.values()) for c in source.values()) == 450
        progress = [e for address, _ in users for e in events.of_type("JobProgress", address=address)]
        assert progress and all(0 <= e["folder_copied"] <= e["folder_total"] for e in progress)
    finally:
        for worker in extra:
            await worker.stop()


async def test_the_source_dropping_the_connection_mid_copy_resumes_the_step(client, admin_token, copyjob_service,
                                                                           source_server):
    """Ensure a connection the source closes mid-fetch (doveadm kick) is retried, and the step goes on
    from what is already here: the copy ends exact."""
    import subprocess

    address, token = await _user(client, admin_token, source_server)
    await _big_source(address, source_server.port, 300)
    reply = await client.request(SERVICE, _start(token, address, source_server.port))
    assert reply.status == "accepted", reply

    await eventually(lambda: _inbox_count_above(address, 20), what="the copy under way")
    kicked = subprocess.run(["doveadm", "-c", str(source_server.folder / "dovecot.conf"), "kick", address],
                            capture_output=True, text=True)
    assert kicked.returncode == 0, kicked.stderr

    job = await _finished(client, token, address, reply.result["job_id"])
    assert job["state"] == "completed", job
    source = await _contents(address, source_server.port, SOURCE_PASSWORD)
    assert await _ours_contents(address) == source


async def _inbox_count_above(address: str, count: int) -> bool:
    return await _inbox_count(address) > count


async def test_a_rabbitmq_restart_mid_copy_loses_and_duplicates_nothing(client, admin_token, copyjob_service, amqp_url,
                                                                        source_server):
    """Ensure a broker stopped and started while a step copies: the step's item comes back and the
    job ends exact (a chunk that could not record is copied again from its checkpoint, adding only
    what the first attempt had not)."""
    address, token = await _user(client, admin_token, source_server)
    await _big_source(address, source_server.port, 300)
    reply = await client.request(SERVICE, _start(token, address, source_server.port))
    assert reply.status == "accepted", reply

    await eventually(lambda: _inbox_count_above(address, 20), what="the copy under way")
    query = GetJob(actor_token=token, address=address, job_id=reply.result["job_id"])
    assert (await client.request(SERVICE, query)).result["state"] == "running"
    await asyncio.to_thread(rabbitmqctl, "stop_app")
    await asyncio.to_thread(rabbitmqctl, "start_app")

    after = await CommandClient.connect(amqp_url)
    try:
        job = await _finished(after, token, address, reply.result["job_id"])
    finally:
        await after.close()
    assert job["state"] == "completed", job
    source = await _contents(address, source_server.port, SOURCE_PASSWORD)
    assert await _ours_contents(address) == source
    assert copyjob_service.process.returncode is None
