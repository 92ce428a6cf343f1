"""Mailbox purge against our real Dovecot and Postfix: every message present at the start goes,
the user's folders go, INBOX and the special-use folders and the account stay, mail delivered
while the purge runs survives, and a worker killed mid-purge leaves it to finish on restart."""

import asyncio

from services.copyjob.adapters.imap import Session
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount, Login
from shared.contracts.copyjob import SERVICE, CancelJob, PurgeMailbox
from tests.copyjob.integration.test_copy_service import _finished
from tests.support import deliver, eventually, holds, mint, new_address, ours_session, subjects_in

PASSWORD = "Strong-Passw0rd!"
SPECIAL = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
MINE = ["Work", "Work/2024", "日本語 & more"]


async def _account(client, admin_token: str, plan: str = "kwc") -> tuple[str, str]:
    address = new_address()
    password = PASSWORD if plan != "sv-basic" else "basic123x"
    reply = await client.request(ACCOUNT, CreateAccount(actor_token=admin_token, address=address, plan=plan,
                                                        initial_password=password))
    assert reply.status == "accepted", reply
    return address, (await client.request(ACCOUNT, Login(login=address, password=password))).result["token"]


async def _ours_session(address: str) -> Session:
    return await ours_session(address)


async def _fill(address: str, inbox: int) -> int:
    """`inbox` messages in INBOX, a few in Sent, Trash and the user's own folders; how many in all."""
    ours = await _ours_session(address)
    try:
        for folder in MINE:
            await ours.create(folder)
        counts = {"INBOX": inbox, "Sent": 3, "Trash": 2, **dict.fromkeys(MINE, 5)}
        for folder, count in counts.items():
            for start in range(0, count, 200):
                await ours.append_many(folder, [(b"Subject: old %d\r\n\r\nold mail\r\n" % n, ("\\Seen",), str(1500000000 + n))
                                                for n in range(start, min(count, start + 200))])
        return sum(counts.values())
    finally:
        await ours.close()


async def _folders(address: str) -> dict[str, int]:
    from services.copyjob.domain.folders import decode_mutf7

    ours = await _ours_session(address)
    try:
        return {decode_mutf7(f.name): (await ours.status(f.name, raw=True)).messages for f in await ours.folders()
                if f.selectable}
    finally:
        await ours.close()


def _old_left(address: str) -> int:
    """Messages _fill put there still present (the notifier's notice of the purge may be there too)."""
    return sum(1 for folder in [*SPECIAL, *MINE] for subject in _subjects_if_any(address, folder)
               if subject.startswith("old "))


def _subjects_if_any(address: str, folder: str) -> list[str]:
    try:
        return subjects_in(address, folder)
    except Exception:  # a folder the purge removed
        return []


async def test_a_purge_killed_midway_finishes_and_spares_mail_delivered_meanwhile(client, admin_token, copyjob_service):
    address, token = await _account(client, admin_token)
    total = await _fill(address, 4000)
    reply = await client.request(SERVICE, PurgeMailbox(actor_token=token, address=address))
    assert reply.status == "accepted", reply

    async def emptying() -> bool:
        return (await _folders(address))["INBOX"] < 4000

    await eventually(emptying, what="the purge under way")
    await copyjob_service.kill()
    try:
        assert await asyncio.to_thread(deliver, address, subject="arrived during the purge")
        await eventually(lambda: holds("arrived during the purge" in subjects_in(address, "INBOX")), what="the delivery")
    finally:
        await copyjob_service.start()
    refused = await client.request(SERVICE, CancelJob(actor_token=token, address=address, job_id=reply.result["job_id"]))
    job = await _finished(client, token, address, reply.result["job_id"])

    assert (job["state"], job["totals"]) == ("completed", {"removed": total, "folders_removed": 3}), job
    assert refused.code == "not_cancellable" if refused.status == "rejected" else refused.result["state"] == "completed"
    assert set(await _folders(address)) == SPECIAL and _old_left(address) == 0
    assert [s for s in subjects_in(address, "INBOX") if not s.startswith("【重要】")] == ["arrived during the purge"]
    assert (await client.request(ACCOUNT, Login(login=address, password=PASSWORD))).status == "accepted"


async def test_a_purge_is_the_owners_or_their_admins_on_every_plan(client, admin_token, issuer, copyjob_service):
    address, token = await _account(client, admin_token, plan="sv-basic")
    other, other_token = await _account(client, admin_token)
    stranger_admin = mint(issuer, "elsewhere", role="admin", domains=("example.com",))

    for actor in (other_token, stranger_admin):
        refused = await client.request(SERVICE, PurgeMailbox(actor_token=actor, address=address))
        assert (refused.status, refused.code) == ("rejected", "forbidden"), refused
    await _fill(address, 3)
    others = await _fill(other, 2)
    by_admin = await client.request(SERVICE, PurgeMailbox(actor_token=admin_token, address=address))
    assert by_admin.status == "accepted", by_admin
    job = await _finished(client, token, address, by_admin.result["job_id"])
    assert job["state"] == "completed" and job["kind"] == "purge", job
    assert set(await _folders(address)) == SPECIAL and _old_left(address) == 0
    assert sum((await _folders(other)).values()) == others


async def test_mailctl_mail_purge_asks_first_and_follows_the_job(tmp_path, client, admin_token, client_url, copyjob_service):
    from tests.mailctl.test_cli import run

    address, _ = await _account(client, admin_token)
    total = await _fill(address, 20)
    assert (await run(tmp_path, client_url, "login", address, "--password-stdin", stdin=PASSWORD + "\n")).returncode == 0

    declined = await run(tmp_path, client_url, "mail", "purge", stdin="n\n")
    assert declined.returncode == 1 and sum((await _folders(address)).values()) == total
    purged = await run(tmp_path, client_url, "mail", "purge", stdin="y\n")
    assert purged.returncode == 0 and "completed" in purged.stdout, purged.stdout + purged.stderr
    status = await run(tmp_path, client_url, "copy", "status")
    assert "purge job" in status.stdout and str(total) in status.stdout, status.stdout
    assert set(await _folders(address)) == SPECIAL and _old_left(address) == 0
