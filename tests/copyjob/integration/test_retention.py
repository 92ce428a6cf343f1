"""Retention against our real Dovecot: by the time in the folder (SAVEDATE, which cannot be faked:
the passes run "as of" a later time), at both boundaries; copied mail with an old INTERNALDATE is
not archived at once; with three workers a pass runs once per account per period, survives its
workers killed mid-move without a duplicate or a gap, and never touches sv-basic."""

import asyncio
from datetime import UTC, datetime, timedelta

from services.copyjob.adapters.retainer import retention_pass
from shared.contracts.copyjob import SERVICE, GetRetention
from shared.registry import SERVICES
from tests.copyjob.integration.test_purge import _account, _folders, _ours_session
from tests.support import ADMIN_LOGIN, ADMIN_PASSWORD, ServiceProcess, eventually

OLD = str(int((datetime.now(UTC) - timedelta(days=400)).timestamp()))
"""an INTERNALDATE 400 days back: mail copied from elsewhere"""


async def _put(address: str, folder: str, count: int) -> None:
    ours = await _ours_session(address)
    try:
        for start in range(0, count, 200):
            await ours.append_many(folder, [(b"Subject: kept %d\r\nMessage-ID: <%d.r@x>\r\n\r\nbody\r\n" % (n, n), ("\\Seen",), OLD)
                                            for n in range(start, min(count, start + 200))])
    finally:
        await ours.close()


async def test_a_pass_goes_by_time_in_the_folder_at_both_boundaries(client, admin_token, copyjob_service):
    address, _ = await _account(client, admin_token)
    await _put(address, "INBOX", 3)
    await _put(address, "Trash", 2)
    now = datetime.now(UTC)
    ours = await _ours_session(address)
    try:
        assert await retention_pass(ours, now + timedelta(days=30), 10) == (0, 0)
        assert await retention_pass(ours, now + timedelta(days=32), 10) == (0, 2)
        assert await retention_pass(ours, now + timedelta(days=179), 10) == (0, 0)
        assert await retention_pass(ours, now + timedelta(days=181), 10) == (3, 0)
        await ours.select("Archive", readonly=True)
        assert {s.internaldate for s in await ours.summaries()} == {OLD}
    finally:
        await ours.close()
    assert {k: v for k, v in (await _folders(address)).items() if v} == {"Archive": 3}


async def test_a_move_cut_off_between_its_copy_and_its_expunge_is_finished_not_repeated(client, admin_token,
                                                                                     copyjob_service):
    """What a worker killed inside MOVE leaves (Dovecot copies, then expunges): some messages in both
    INBOX and Archive. The next pass expunges those from INBOX and moves the rest."""
    address, _ = await _account(client, admin_token)
    await _put(address, "INBOX", 30)
    await _put(address, "Archive", 1)  # the user's own, older: not a leftover
    ours = await _ours_session(address)
    try:
        await ours.create("Archive")
        await ours.select("INBOX")
        copied = await ours.client.protocol.copy("1:12", '"Archive"', by_uid=True)
        assert copied.result == "OK"
        assert await retention_pass(ours, datetime.now(UTC) + timedelta(days=181), 5) == (30, 0)
    finally:
        await ours.close()
    assert {k: v for k, v in (await _folders(address)).items() if v} == {"Archive": 31}


async def test_passes_run_once_per_period_survive_killed_workers_and_skip_sv_basic(tmp_path, client, admin_token, client_url,
                                                                                  copyjob_service, copyjob_env, amqp_url):
    big, big_token = await _account(client, admin_token)
    basic, _ = await _account(client, admin_token, plan="sv-basic")
    trash, _ = await _account(client, admin_token, plan="business-standard")
    await _put(big, "INBOX", 1500)
    await _put(basic, "INBOX", 5)
    await _put(trash, "Trash", 3)
    env = {**copyjob_env, "RETENTION_SPREAD_S": "0", "RETENTION_SWEEP_S": "0.5", "RETENTION_CLOCK_SHIFT_DAYS": "181",
           "RETENTION_BATCH": "25"}
    await copyjob_service.stop()
    workers = [ServiceProcess(SERVICES["copyjob"], env, amqp_url, instance=f"test-retention-{n}") for n in range(4)]
    try:
        await asyncio.gather(*(w.start() for w in workers[:3]))

        async def moving() -> bool:
            return (await _folders(big))["Archive"] > 0

        await eventually(moving, timeout=60, what="the pass under way")
        await asyncio.gather(*(w.kill() for w in workers[:3]))
        assert (await _folders(big))["INBOX"] > 0, "the pass ended before the workers were killed"
        await workers[3].start()

        async def passes(address: str) -> int:
            reply = await client.request(SERVICE, GetRetention(actor_token=admin_token, address=address))
            return int(reply.result["passes"])

        async def all_passed() -> bool:
            return await passes(big) == 1 and await passes(trash) == 1

        await eventually(all_passed, timeout=60, what="the passes of both accounts")
        later, _ = await _account(client, admin_token)
        await eventually(lambda: _passed(client, admin_token, later), timeout=30, what="a later sweep's pass")
    finally:
        for worker in workers:
            await worker.stop()
        await copyjob_service.start()

    assert (await passes(big), await passes(trash), await passes(basic)) == (1, 1, 0)
    big_folders = await _folders(big)
    assert (big_folders["INBOX"], big_folders["Archive"]) == (0, 1500)
    assert (await _folders(trash))["Trash"] == 0
    assert (await _folders(basic))["INBOX"] == 5
    shown = (await client.request(SERVICE, GetRetention(actor_token=admin_token, address=basic))).result
    assert (shown["applies"], shown["last"]) == (False, None)
    refused = await client.request(SERVICE, GetRetention(actor_token=big_token, address=big))
    assert refused.code == "forbidden"
    from tests.mailctl.test_cli import run

    assert (await run(tmp_path, client_url, "login", ADMIN_LOGIN, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")).returncode == 0
    shown_by_mailctl = await run(tmp_path, client_url, "account", "retention", big)
    assert "1 pass(es)" in shown_by_mailctl.stdout and "moved to Archive" in shown_by_mailctl.stdout, shown_by_mailctl.stdout


async def _passed(client, admin_token: str, address: str) -> bool:
    reply = await client.request(SERVICE, GetRetention(actor_token=admin_token, address=address))
    return reply.status == "accepted" and reply.result["passes"] == 1
