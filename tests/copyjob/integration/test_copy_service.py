"""Mail copy through the broker, from another provider's IMAP server (a Dovecot of its own, `.` as
separator) into ours, checked as a user would see it over IMAP."""

import asyncio
import uuid
from collections import Counter
from hashlib import sha256

from pymongo import AsyncMongoClient

from services.copyjob.adapters.imap import Session
from shared.client import CommandClient
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount, Login
from shared.contracts.copyjob import SERVICE, CancelJob, GetJob, StartCopy
from tests.support import eventually, holds, new_address, ours_session

PASSWORD = "Strong-Passw0rd!"
SOURCE_PASSWORD = "source-secret-9"
BASIC = "basic123x"


async def _user(client: CommandClient, admin_token: str, source_server, plan: str = "kwc",
                quota_mb: int | None = None) -> tuple[str, str]:
    """A user here (logged in) who also has an account with the same address on the source server."""
    address, password = new_address(), BASIC if plan == "sv-basic" else PASSWORD
    reply = await client.request(ACCOUNT, CreateAccount(actor_token=admin_token, address=address, plan=plan,
                                                        initial_password=password, quota_mb=quota_mb))
    assert reply.status == "accepted", reply
    await source_server.add_user(address, SOURCE_PASSWORD)
    token = (await client.request(ACCOUNT, Login(login=address, password=password))).result["token"]
    return address, token


async def _append_source(address: str, port: int, count: int, size: int) -> None:
    """`count` messages of about `size` bytes into the source's INBOX."""
    source = await Session.open("127.0.0.1", port, tls=None, server_hostname=None, user=address, password=SOURCE_PASSWORD)
    try:
        for n in range(count):
            await source.append("INBOX", b"Subject: bulk %d\r\n\r\n" % n + b"y" * size + b"\r\n", (), str(1500000000 + n))
    finally:
        await source.close()


async def _fill_source(address: str, port: int) -> None:
    source = await Session.open("127.0.0.1", port, tls=None, server_hostname=None, user=address, password=SOURCE_PASSWORD)
    try:
        for folder in ("Sent", "Projects", "Projects.2024", "日本語 フォルダ", 'Odd "name" & co'):
            await source.create(folder)
        messages = [("INBOX", b"Subject: one\r\nMessage-ID: <1@x>\r\n\r\nbody one\r\n", ("\\Seen",), 1500000000),
                    ("INBOX", b"Subject: no id\r\n\r\nno message id\r\n", (), 1500000100),
                    ("INBOX", b"Subject: twin\r\nMessage-ID: <twin@x>\r\n\r\nsame\r\n", ("$Label1",), 1500000200),
                    ("INBOX", b"Subject: twin\r\nMessage-ID: <twin@x>\r\n\r\nsame\r\n", ("$Label1",), 1500000200),
                    ("INBOX", b"Subject: twin\r\nMessage-ID: <twin@x>\r\n\r\ndifferent content\r\n", (), 1500000200),
                    ("Sent", b"Subject: sent\r\nMessage-ID: <s@x>\r\n\r\nsent\r\n", ("\\Seen", "\\Answered"), 1400000000),
                    ("Projects.2024", b"Subject: nested\r\n\r\n" + b"x" * 300_000 + b"\r\n", ("\\Flagged",), 1600000000),
                    ("日本語 フォルダ", "Subject: =?UTF-8?B?5pel5pys6Kqe?=\r\n\r\n本文\r\n".encode(), (), 1650000000)]
        for folder, body, flags, date in messages:
            await source.append(folder, body, flags, str(date))
    finally:
        await source.close()


async def _contents(address: str, port: int, password: str) -> dict[str, Counter]:
    """The source's mailbox (on loopback), as _held reads it."""
    return await _held(await Session.open("127.0.0.1", port, tls=None, server_hostname=None, user=address, password=password))


async def _ours_contents(address: str) -> dict[str, Counter]:
    """Ours, as the account's owner would see it (through the services' socket), as _held reads it."""
    return await _held(await ours_session(address))


async def _held(session: Session) -> dict[str, Counter]:
    """Per folder (our names), a multiset of (content hash, flags without \\Recent, INTERNALDATE); the
    session closed after."""
    from services.copyjob.domain.folders import our_name

    found: dict[str, Counter] = {}
    try:
        for folder in await session.folders():
            if not folder.selectable:
                continue
            await session.select(folder.name, raw=True, readonly=True)
            found[our_name(folder)] = Counter([
                (sha256(await session.body(s.uid)).hexdigest(), frozenset(f for f in s.flags if f != "\\Recent"), s.internaldate)
                for s in await session.summaries()])
    finally:
        await session.close()
    return {name: counts for name, counts in found.items() if counts}


async def _finished(client: CommandClient, token: str, address: str, job_id: str, timeout: float = 60) -> dict:
    job: dict = {}

    async def done() -> bool:
        job.update((await client.request(SERVICE, GetJob(actor_token=token, address=address, job_id=job_id))).result)
        return job["state"] != "running"

    await eventually(done, timeout=timeout, what="the copy job to end")
    return job


async def test_a_copy_equals_the_source_and_a_second_run_adds_nothing(client, admin_token, copyjob_service, source_server):
    address, token = await _user(client, admin_token, source_server)
    await _fill_source(address, source_server.port)
    start = StartCopy(actor_token=token, address=address, current_password=PASSWORD, source_host="127.0.0.1",
                      source_port=source_server.port, source_security="plain", source_password=SOURCE_PASSWORD,
                      notification_address="me@example.net")

    reply = await client.request(SERVICE, start)
    assert reply.status == "accepted", reply
    job = await _finished(client, token, address, reply.result["job_id"])
    assert job["state"] == "completed", job
    assert job["totals"]["copied"] == 8
    source = await _contents(address, source_server.port, SOURCE_PASSWORD)
    copied = await _ours_contents(address)
    assert copied == source

    again = await client.request(SERVICE, start.model_copy(update={"message_id": uuid.uuid4()}))
    assert again.status == "accepted", again
    second = await _finished(client, token, address, again.result["job_id"])
    assert (second["state"], second["totals"]["copied"], second["totals"]["already_there"]) == ("completed", 0, 8)
    assert await _ours_contents(address) == source


async def test_a_start_waiting_on_its_checks_holds_no_other_accounts_command(client, admin_token, copyjob_service,
                                                                          copyjob_env, account_service, source_server):
    """Ensure a StartCopy whose password check hangs (the account service stopped, not gone) is checked
    out of the account's turn: commands for other accounts, on every command shard, are answered
    meanwhile, and the start is answered once its check is."""
    address, token = await _user(client, admin_token, source_server)
    jobs = AsyncMongoClient(copyjob_env["MONGODB_URL"])[copyjob_env["MONGODB_DB"]]["jobs"]
    others = [new_address() for _ in range(16)]  # spread over the shards (4), this account's among them
    try:
        with account_service.paused():
            start = asyncio.ensure_future(client.request(SERVICE, _start(token, address, source_server.port)))
            await eventually(lambda: _starting(jobs, address), what="the start waiting on its checks")
            answered = await asyncio.gather(*(client.request(SERVICE, GetJob(actor_token=admin_token, address=other),
                                                             timeout=10) for other in others))
            assert {reply.code for reply in answered if reply.status == "rejected"} == {"not_found"}
            assert not start.done()
        reply = await start
    finally:
        await jobs.database.client.close()
    assert reply.status == "accepted", reply
    assert (await _finished(client, token, address, reply.result["job_id"]))["state"] == "completed"


async def _starting(jobs, address: str) -> bool:
    return bool(((await jobs.find_one({"_id": address})) or {}).get("starting"))


def _start(token: str, address: str, port: int, **changes) -> StartCopy:
    fields = {"actor_token": token, "address": address, "current_password": PASSWORD, "source_host": "127.0.0.1",
              "source_port": port, "source_security": "plain", "source_password": SOURCE_PASSWORD,
              "notification_address": "me@example.net", **changes}
    return StartCopy(**fields)


async def test_a_wrong_source_password_fails_the_job_with_that_reason_and_its_secret_goes(
        client, admin_token, copyjob_service, copyjob_env, source_server, events):
    address, token = await _user(client, admin_token, source_server)

    reply = await client.request(SERVICE, _start(token, address, source_server.port, source_password="not-it"))
    assert reply.status == "accepted", reply
    job = await _finished(client, token, address, reply.result["job_id"])

    assert (job["state"], job["reason"]) == ("failed", "source_login_refused")
    await eventually(lambda: holds(bool(events.of_type("JobFailed", address=address))), what="JobFailed")
    [failed] = events.of_type("JobFailed", address=address)
    assert failed["reason"] == "source_login_refused" and "not-it" not in str(failed)
    assert "not-it" not in str(events.received)
    doc = await _stored(copyjob_env, address)
    assert doc["secret"] is None and "not-it" not in str(doc)


async def _stored(env: dict, address: str) -> dict:
    mongo: AsyncMongoClient = AsyncMongoClient(env["MONGODB_URL"])
    try:
        return await mongo[env["MONGODB_DB"]]["jobs"].find_one({"_id": address}) or {}
    finally:
        await mongo.close()


async def test_refusals_start_nothing(client, admin_token, copyjob_service, source_server):
    """Ensure a wrong own password is invalid_credentials, private sources in any spelling and
    unresolvable names are refused, a notification address that is not exactly one plain address (a list
    would mail each) is refused, an admin may not start a copy, and the plan must allow it."""
    address, token = await _user(client, admin_token, source_server)
    port = source_server.port

    wrong = await client.request(SERVICE, _start(token, address, port, current_password="Wrong-Passw0rd!"))
    assert (wrong.status, wrong.code) == ("rejected", "invalid_credentials")
    for host in ("127.0.0.2", "0x7f000002", "2130706434", "10.0.0.1", "169.254.169.254", "[::ffff:10.0.0.1]",
                 "no-such-host.invalid"):
        refused = await client.request(SERVICE, _start(token, address, port, source_host=host))
        assert (refused.code, refused.errors[0].field) == ("validation_failed", "source_host"), host
    for notify in ("a@example.net, b@example.org", "a@example.net;b@example.org", "Me <a@example.net>",
                   "a@example.net\r\nBcc: b@example.org", "nobody", "-a@example.net"):
        refused = await client.request(SERVICE, _start(token, address, port, notification_address=notify))
        assert (refused.code, [e.field for e in refused.errors]) == ("validation_failed", ["notification_address"]), notify
    both = await client.request(SERVICE, _start(token, address, port, notification_address="a@x, b@y", source_host="10.0.0.1"))
    assert sorted(e.field for e in both.errors) == ["notification_address", "source_host"]  # every broken rule at once
    admin = await client.request(SERVICE, _start(admin_token, address, port))
    assert (admin.status, admin.code) == ("rejected", "forbidden")
    basic, basic_token = await _user(client, admin_token, source_server, plan="sv-basic")
    assert (await client.request(SERVICE, _start(basic_token, basic, port, current_password=BASIC))).code == "not_allowed_on_plan"
    assert (await client.request(SERVICE, GetJob(actor_token=token, address=address))).code == "not_found"


async def test_one_job_at_a_time_and_cancel_keeps_what_was_copied(client, admin_token, copyjob_service, source_server):
    address, token = await _user(client, admin_token, source_server)
    await _append_source(address, source_server.port, 400, 2000)

    first = await client.request(SERVICE, _start(token, address, source_server.port))
    assert first.status == "accepted", first
    second = await client.request(SERVICE, _start(token, address, source_server.port))
    assert (second.status, second.code) == ("rejected", "already_running")
    cancel = await client.request(SERVICE, CancelJob(actor_token=token, address=address, job_id=first.result["job_id"]))
    assert cancel.status == "accepted" and cancel.result["state"] == "cancelled", cancel
    await asyncio.sleep(3)
    copied = await _ours_contents(address)
    assert sum(copied.get("INBOX", Counter()).values()) < 400
    again = await client.request(SERVICE, _start(token, address, source_server.port))
    assert again.status == "accepted", again
    job = await _finished(client, token, address, again.result["job_id"])
    assert job["state"] == "completed" and job["totals"]["copied"] + job["totals"]["already_there"] == 400


async def test_mailctl_copy_start_follows_the_job_to_its_end(tmp_path, client, admin_token, client_url, copyjob_service,
                                                            source_server):
    from tests.mailctl.test_cli import run

    address, _ = await _user(client, admin_token, source_server)
    await _fill_source(address, source_server.port)
    assert (await run(tmp_path, client_url, "login", address, "--password-stdin", stdin=PASSWORD + "\n")).returncode == 0

    started = await run(tmp_path, client_url, "copy", "start", "127.0.0.1", "--port", str(source_server.port),
                        "--security", "plain", "--notify", "me@example.net", stdin=f"{PASSWORD}\n{SOURCE_PASSWORD}\n")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "completed" in started.stdout
    status = await run(tmp_path, client_url, "copy", "status")
    assert status.returncode == 0 and "completed" in status.stdout and "Projects/2024" in status.stdout, status.stdout
    assert SOURCE_PASSWORD not in started.stdout + status.stdout


async def test_imaps_is_verified_against_the_name_given_and_too_big_messages_are_listed(
        client, admin_token, copyjob_service, source_server):
    """Ensure TLS to the source checks its certificate against the host name the user gave (the
    test CA signed one for `localhost`: by that name the copy runs, by its IP address it fails),
    and a message over the size limit (lowered to 1 MB here) is skipped, counted and listed."""
    address, token = await _user(client, admin_token, source_server)
    source = await Session.open("127.0.0.1", source_server.port, tls=None, server_hostname=None, user=address,
                                password=SOURCE_PASSWORD)
    try:
        await source.append("INBOX", b"Subject: small\r\n\r\nsmall\r\n", (), "1500000000")
        await source.append("INBOX", b"Subject: huge\r\n\r\n" + b"h" * 1_200_000 + b"\r\n", (), "1500000001")
    finally:
        await source.close()

    by_ip = await client.request(SERVICE, _start(token, address, source_server.tls_port, source_security="imaps"))
    assert by_ip.status == "accepted", by_ip
    failed = await _finished(client, token, address, by_ip.result["job_id"])
    assert (failed["state"], failed["reason"]) == ("failed", "source_tls_failed")

    by_name = await client.request(SERVICE, _start(token, address, source_server.tls_port, source_security="imaps",
                                                   source_host="localhost"))
    assert by_name.status == "accepted", by_name
    job = await _finished(client, token, address, by_name.result["job_id"])
    assert job["state"] == "completed", job
    assert (job["totals"]["copied"], job["totals"]["skipped_too_big"]) == (1, 1)
    [inbox] = [f for f in job["folders"] if f["name"] == "INBOX"]
    assert len(inbox["too_big"]) == 1 and "bytes" in inbox["too_big"][0]


async def test_a_mailbox_that_fills_up_fails_the_job_as_quota_exceeded(client, admin_token, copyjob_service, source_server,
                                                                       copyjob_service_log):
    """Ensure a copy into a 1 MB mailbox of 2 MB of mail stops with quota_exceeded, and that no source
    password ever reaches the service's log (nor its traces, which go there)."""
    address, token = await _user(client, admin_token, source_server, quota_mb=1)
    await _append_source(address, source_server.port, 5, 400_000)

    started = await client.request(SERVICE, _start(token, address, source_server.port))
    job = await _finished(client, token, address, started.result["job_id"])

    assert (job["state"], job["reason"]) == ("failed", "quota_exceeded"), job
    assert SOURCE_PASSWORD not in copyjob_service_log() and PASSWORD not in copyjob_service_log()


async def test_starttls_upgrades_the_plain_port_and_verifies_the_name(client, admin_token, copyjob_service, source_server):
    """Ensure STARTTLS on the source's plain port runs by the certificate's name and fails by IP."""
    address, token = await _user(client, admin_token, source_server)
    await _append_source(address, source_server.port, 3, 1000)

    by_ip = await client.request(SERVICE, _start(token, address, source_server.port, source_security="starttls"))
    assert (await _finished(client, token, address, by_ip.result["job_id"]))["reason"] == "source_tls_failed"
    by_name = await client.request(SERVICE, _start(token, address, source_server.port, source_security="starttls",
                                                   source_host="localhost"))
    job = await _finished(client, token, address, by_name.result["job_id"])
    assert (job["state"], job["totals"]["copied"]) == ("completed", 3), job
