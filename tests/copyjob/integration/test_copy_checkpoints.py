"""Checkpoints: a folder is copied in chunks (40 messages in tests), a re-run copies only what is
new at the source, one with nothing new opens no folder, a message removed here is copied again,
and a re-run whose checkpoints were lost still adds nothing."""

import uuid

import pymongo

from services.copyjob.adapters.imap import Session
from shared.contracts.copyjob import SERVICE
from tests.copyjob.integration.test_copy_service import (
    SOURCE_PASSWORD,
    _append_source,
    _contents,
    _finished,
    _ours_contents,
    _start,
    _user,
)
from tests.support import as_owner


async def _copy(client, token: str, address: str, port: int) -> dict:
    reply = await client.request(SERVICE, _start(token, address, port).model_copy(update={"message_id": uuid.uuid4()}))
    assert reply.status == "accepted", reply
    job = await _finished(client, token, address, reply.result["job_id"])
    assert job["state"] == "completed", job
    return job


async def _work_folder(address: str, port: int, count: int) -> None:
    source = await Session.open("127.0.0.1", port, tls=None, server_hostname=None, user=address, password=SOURCE_PASSWORD)
    try:
        await source.create("Work")
        for n in range(count):
            await source.append("Work", b"Subject: work %d\r\nMessage-ID: <w%d@x>\r\n\r\nwork\r\n" % (n, n), (), str(1600000000 + n))
    finally:
        await source.close()


def _delete_here(address: str, folder: str, count: int) -> None:
    with as_owner(address) as imap:
        imap.select(folder)
        imap.store(f"1:{count}", "+FLAGS", "(\\Deleted)")
        imap.expunge()


def _deliver_here(address: str) -> None:
    with as_owner(address) as imap:
        imap.append("INBOX", "", None, b"Subject: delivered here meanwhile\r\n\r\nhello\r\n")


def _totals(job: dict) -> tuple[int, int]:
    return job["totals"]["copied"], job["totals"]["already_there"]


async def test_reruns_copy_only_what_is_new_and_lost_checkpoints_add_nothing(client, admin_token, copyjob_service,
                                                                              copyjob_env, source_server):
    address, token = await _user(client, admin_token, source_server)
    await _append_source(address, source_server.port, 100, 2_000)
    await _work_folder(address, source_server.port, 30)

    async def ours() -> dict:
        return await _ours_contents(address)

    first = await _copy(client, token, address, source_server.port)  # INBOX in three chunks
    assert _totals(first) == (130, 0)
    assert await ours() == await _contents(address, source_server.port, SOURCE_PASSWORD)

    await _append_source(address, source_server.port, 5, 3_000)
    _deliver_here(address)
    assert _totals(await _copy(client, token, address, source_server.port)) == (5, 130)

    _delete_here(address, "Work", 2)
    assert _totals(await _copy(client, token, address, source_server.port)) == (2, 133)
    assert _totals(await _copy(client, token, address, source_server.port)) == (0, 135)

    jobs = pymongo.MongoClient(copyjob_env["MONGODB_URL"])[copyjob_env["MONGODB_DB"]]["jobs"]
    jobs.update_one({"_id": address}, {"$set": {"marks": {}}})
    assert _totals(await _copy(client, token, address, source_server.port)) == (0, 135)
    source = await _contents(address, source_server.port, SOURCE_PASSWORD)
    here = await ours()
    assert sum(here["INBOX"].values()) == sum(source["INBOX"].values()) + 1
    assert here["Work"] == source["Work"]
