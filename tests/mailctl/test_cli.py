"""mailctl end to end: the CLI as a person runs it, against the running account service."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

from tests.support import ADMIN_LOGIN, ADMIN_PASSWORD, eventually, imap_login, new_address


def mailctl(tmp_path, client_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "AMQP_URL": client_url, "MAILCTL_SESSION": str(tmp_path / "session.json"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "mailctl.cli", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=60)


async def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(mailctl, *args, **kwargs)


async def test_admin_creates_an_account_and_the_user_changes_its_password(tmp_path, client_url, account_service):
    """Ensure the README's first session works: admin login, create (weak password refused), user login, password change."""
    address, first, second = new_address(), "Cli-Passw0rd-One!", "Cli-Passw0rd-Two!"
    assert (await run(tmp_path, client_url, "login", ADMIN_LOGIN, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")).returncode == 0

    weak = await run(tmp_path, client_url, "account", "create", address, "--plan", "kwc", stdin="short\nshort\n")
    assert weak.returncode == 1 and "too_short" in weak.stdout and "missing_digit" in weak.stdout
    weak_json = await run(tmp_path, client_url, "--json", "account", "create", address, "--plan", "kwc", stdin="short\nshort\n")
    assert {"field": "initial_password", "code": "too_short", "message": "must be at least 12 characters long",
            "params": {"min_length": 12}} in json.loads(weak_json.stdout)["errors"]
    created = await run(tmp_path, client_url, "account", "create", address, "--plan", "kwc", stdin=f"{first}\n{first}\n")
    assert created.returncode == 0, created.stdout + created.stderr
    shown = await run(tmp_path, client_url, "--json", "account", "show", address)
    reply = json.loads(shown.stdout)
    assert reply["result"].pop("created_at").startswith(str(datetime.now(UTC).year))
    assert reply == {"status": "accepted", "result": {
        "address": address, "plan": "kwc", "quota_mb": None, "comment": "", "usage": {"bytes": 0, "messages": 0}}}
    again = await run(tmp_path, client_url, "--json", "account", "create", address, "--plan", "kwc", stdin=f"{first}\n{first}\n")
    assert again.returncode == 1 and json.loads(again.stdout)["status"] == "rejected"

    assert (await run(tmp_path, client_url, "login", address, "--password-stdin", stdin=first + "\n")).returncode == 0
    own = await run(tmp_path, client_url, "account", "show")
    assert own.returncode == 0 and "0.0 MB in 0 messages" in own.stdout and "no limit" in own.stdout
    forbidden = await run(tmp_path, client_url, "account", "delete", address, "--yes")
    assert forbidden.returncode == 1 and "forbidden" in forbidden.stdout
    wrong = await run(tmp_path, client_url, "password", "change", stdin=f"Not-the-current-1!\n{second}\n{second}\n")
    assert wrong.returncode == 1 and "invalid_credentials" in wrong.stdout
    changed = await run(tmp_path, client_url, "password", "change", stdin=f"{first}\n{second}\n{second}\n")
    assert changed.returncode == 0 and "session ended" in changed.stdout
    assert (await run(tmp_path, client_url, "whoami")).returncode == 2
    await eventually(lambda: imap_login(address, second), what="the new password over IMAP")


def test_a_password_is_never_taken_from_the_command_line(tmp_path, client_url):
    """Ensure `mailctl login` has no password option (`ps` shows command lines to every local user)."""
    refused = mailctl(tmp_path, client_url, "login", "admin", "--password", "Visible-in-ps-1!")

    assert refused.returncode == 2 and "No such option" in refused.stderr


async def _account_with_rules(tmp_path, client_url: str) -> str:
    """As the admin: a new kwc account, once the rules service knows it."""
    address = new_address()
    assert (await run(tmp_path, client_url, "login", ADMIN_LOGIN, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")).returncode == 0
    created = await run(tmp_path, client_url, "account", "create", address, "--plan", "kwc",
                        stdin="Cli-Passw0rd-One!\nCli-Passw0rd-One!\n")
    assert created.returncode == 0, created.stdout + created.stderr

    async def known() -> bool:
        return (await run(tmp_path, client_url, "rules", "show", "-a", address)).returncode == 0

    await eventually(known, what="the rules service to know the account")
    return address


async def test_rules_from_the_command_line(tmp_path, client_url, account_service, rules_service):
    """Ensure mailctl covers the rules: switches, an autoreply from stdin, and the state shown."""
    address = await _account_with_rules(tmp_path, client_url)
    for args, stdin in ((("spam-tag", "on"), ""), (("spam-sort", "on"), ""), (("autoreply", "set"), "Away\n")):
        done = await run(tmp_path, client_url, "rules", *args, "-a", address, stdin=stdin)
        assert done.returncode == 0, done.stdout + done.stderr
    refused = await run(tmp_path, client_url, "rules", "receive", "off", "-a", address)
    assert refused.returncode == 1 and "accept_loss" in refused.stdout

    async def applied() -> bool:
        shown = await run(tmp_path, client_url, "rules", "show", "-a", address)
        return "applied (version 4 of 4)" in shown.stdout and "Away" in shown.stdout

    await eventually(applied, what="mailctl to show the rules applied")


async def test_forwarding_from_the_command_line(tmp_path, client_url, account_service, rules_service):
    """Ensure mailctl adds, lists (alphabetically) and removes forwards, and shows a refusal's reasons."""
    address = await _account_with_rules(tmp_path, client_url)
    added = await run(tmp_path, client_url, "rules", "forward", "add", "subject", "zed@example.org", "amy@example.org",
                      "--match", "請求書", "-a", address)
    assert added.returncode == 0, added.stdout + added.stderr
    refused = await run(tmp_path, client_url, "rules", "forward", "add", "-a", address, "all", "--", "-x@example.org", address)
    assert refused.returncode == 1 and "must not start with -" in refused.stdout and "own address" in refused.stdout

    shown = await run(tmp_path, client_url, "rules", "show", "-a", address)
    assert "subject contains '請求書' -> amy@example.org, zed@example.org" in shown.stdout
    assert "sent out this hour" in shown.stdout and "0 of 3000" in shown.stdout
    removed = await run(tmp_path, client_url, "rules", "forward", "remove", "2", "-a", address)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "forward #" not in (await run(tmp_path, client_url, "rules", "show", "-a", address)).stdout


async def test_logout_ends_the_session_on_the_services_and_forgets_it(tmp_path, client_url, account_service):
    """Ensure `mailctl logout` ends the session itself (its token refused afterwards, another device's session going
    on), `logout --everywhere` ends every session, and with the broker away the token is forgotten all the same and
    the person is told it stays valid until it expires."""
    from tests.support import free_port

    address, password = new_address(), "Cli-Passw0rd-One!"
    admin, phone, laptop = (tmp_path / name for name in ("admin", "phone", "laptop"))
    for device in (admin, phone, laptop):
        device.mkdir()
    assert (await run(admin, client_url, "login", ADMIN_LOGIN, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")).returncode == 0
    assert (await run(admin, client_url, "account", "create", address, "--plan", "kwc",
                      stdin=f"{password}\n{password}\n")).returncode == 0
    for device in (phone, laptop):
        assert (await run(device, client_url, "login", address, "--password-stdin", stdin=password + "\n")).returncode == 0
    ended_token = json.loads((phone / "session.json").read_text())["token"]

    out = await run(phone, client_url, "--json", "logout")

    assert json.loads(out.stdout) == {"status": "accepted", "result": {"login": address, "outcome": "ended"}}
    assert (await run(phone, client_url, "whoami")).returncode == 2
    (phone / "session.json").write_text(json.dumps({"token": ended_token, "subject": address}))  # kept by someone
    replayed = await run(phone, client_url, "account", "show")
    assert replayed.returncode == 1 and "unauthenticated" in replayed.stdout
    assert (await run(laptop, client_url, "account", "show")).returncode == 0

    everywhere = await run(laptop, client_url, "logout", "--everywhere")
    assert everywhere.returncode == 0 and "signed out everywhere" in everywhere.stdout
    assert (await run(admin, client_url, "logout")).returncode == 0

    assert (await run(laptop, client_url, "login", address, "--password-stdin", stdin=password + "\n")).returncode == 0
    away = await run(laptop, f"amqp://nobody:nothing@127.0.0.1:{free_port()}/", "logout")
    assert away.returncode == 2 and "forgotten here" in away.stdout and "stays valid until" in away.stdout
    assert not (laptop / "session.json").exists()


async def test_an_admin_lists_its_domains_accounts_page_by_page(tmp_path, client_url, account_service):
    """Ensure `account list` pages through a search with the cursor it prints, as a table and as JSON."""
    tag = f"l{uuid.uuid4().hex[:8]}"
    made = [f"{tag}-{n}@example.jp" for n in range(3)]
    assert (await run(tmp_path, client_url, "login", ADMIN_LOGIN, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")).returncode == 0
    for address in made:
        created = await run(tmp_path, client_url, "account", "create", address, "--plan", "sv-basic",
                            "--comment", "一覧", stdin="basic123x\nbasic123x\n")
        assert created.returncode == 0, created.stdout + created.stderr

    async def listed() -> bool:
        shown = await run(tmp_path, client_url, "--json", "account", "list", "example.jp", "--prefix", tag.upper())
        return [a["address"] for a in json.loads(shown.stdout)["result"]["accounts"]] == made

    await eventually(listed, what="the new accounts in the list")
    first = json.loads((await run(tmp_path, client_url, "--json", "account", "list", "example.jp", "--prefix", tag,
                                  "--limit", "2")).stdout)["result"]
    assert [a["address"] for a in first["accounts"]] == made[:2] and first["next"]
    assert set(first["accounts"][0]) == {"address", "plan", "quota_mb", "comment", "created_at", "state"}
    table = await run(tmp_path, client_url, "account", "list", "example.jp", "--prefix", tag, "--limit", "2")
    assert table.returncode == 0 and made[0] in table.stdout and "一覧" in table.stdout
    assert f"--after {first['next']}" in table.stdout
    rest = json.loads((await run(tmp_path, client_url, "--json", "account", "list", "example.jp", "--prefix", tag,
                                 "--after", first["next"])).stdout)["result"]
    assert [a["address"] for a in rest["accounts"]] == made[2:] and rest["next"] is None

    too_many = await run(tmp_path, client_url, "account", "list", "example.jp", "--limit", "500")
    assert too_many.returncode == 1 and "page_size" in too_many.stdout
    assert (await run(tmp_path, client_url, "login", made[0], "--password-stdin", stdin="basic123x\n")).returncode == 0
    forbidden = await run(tmp_path, client_url, "account", "list", "example.jp")
    assert forbidden.returncode == 1 and "forbidden" in forbidden.stdout
