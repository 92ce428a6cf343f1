"""The size limit at its real value (out of CI: `scripts/test.sh -m slow`): a message of just under
100 MB is copied byte for byte, one just over it is skipped and listed."""

import hashlib

import pytest

from services.copyjob.adapters.imap import Session
from shared.contracts.copyjob import SERVICE
from shared.registry import SERVICES
from tests.copyjob.integration.test_copy_service import SOURCE_PASSWORD, _finished, _start, _user
from tests.support import ServiceProcess, ours_session

pytestmark = pytest.mark.slow
LIMIT = 100 * 1024 * 1024


def _message(size: int, subject: bytes) -> bytes:
    head = b"Subject: " + subject + b"\r\nMessage-ID: <" + subject + b"@x>\r\n\r\n"
    line = b"0123456789" * 7 + b"\r\n"
    return head + (line * (size // len(line) + 1))[: size - len(head)]


async def test_a_message_at_the_real_limit_is_copied_and_one_over_it_skipped(client, admin_token, copyjob_service,
                                                                             copyjob_env, amqp_url, source_server):
    under, over = _message(LIMIT - 1024, b"under"), _message(LIMIT + 1024, b"over")
    address, token = await _user(client, admin_token, source_server, quota_mb=1024)
    source = await Session.open("127.0.0.1", source_server.port, tls=None, server_hostname=None, user=address,
                                password=SOURCE_PASSWORD)
    try:
        for body in (under, over):
            await source.append("INBOX", body, (), "1500000000")
    finally:
        await source.close()
    await copyjob_service.stop()  # the suite's worker refuses above 1 MB: this one has the real limit
    big_jobs = {**copyjob_env, "MAX_MESSAGE_BYTES": str(LIMIT), "JOB_MAX_BYTES": str(10 * LIMIT),
                "STEP_DEADLINE_S": "1200"}
    worker = ServiceProcess(SERVICES["copyjob"], big_jobs, amqp_url,
                            instance="test-copyjob-large")
    await worker.start()
    try:
        reply = await client.request(SERVICE, _start(token, address, source_server.port))
        assert reply.status == "accepted", reply
        job = await _finished(client, token, address, reply.result["job_id"], timeout=300)
    finally:
        await worker.stop()
        await copyjob_service.start()

    assert (job["state"], job["totals"]["copied"], job["totals"]["skipped_too_big"]) == ("completed", 1, 1), job
    assert job["folders"][0]["too_big"] == [f"INBOX#2 ({len(over)} bytes)"]
    ours = await ours_session(address)
    try:
        await ours.select("INBOX", readonly=True)
        [copied] = await ours.summaries()
        assert hashlib.sha256(await ours.body(copied.uid)).digest() == hashlib.sha256(under).digest()
    finally:
        await ours.close()
