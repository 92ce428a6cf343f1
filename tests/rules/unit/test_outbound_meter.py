"""The outbound meter: the hour's count as a pure rule, and the program as Dovecot's Sieve runs it
(its own folder layout, the account in USER, exit 0 = send, 1 = held, 2 = not ours to answer)."""

import concurrent.futures
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.rules.adapters import outbound_meter
from services.rules.adapters.outbound_meter import (
    OutboundMeters,
    Usage,
    ask,
    counted,
    meter_path,
    read_usage,
    sweep,
    usage_in,
)

NOW = 1_800_000_000.0
ADDRESS = "taro@example.jp"


def test_messages_go_out_while_they_fit_in_the_hour_and_are_held_after():
    state: dict[str, object] = {}
    answers = []
    for messages in (300, 300, 300, 100, 1, 300):
        state, fits = counted(state, messages, 1000, NOW)
        answers.append(fits)

    assert answers == [True, True, True, True, False, False]
    assert usage_in(state, NOW) == Usage(sent=1000, held=301, limit=1000, last_held_at=NOW)


def test_the_hour_slides_minute_by_minute():
    state, _ = counted({}, 10, 10, NOW)
    state, later = counted(state, 1, 10, NOW + 59 * 60)
    state, after_the_hour = counted(state, 10, 10, NOW + 60 * 60)

    assert not later and after_the_hour
    assert usage_in(state, NOW + 60 * 60) == Usage(sent=10, held=1, limit=10, last_held_at=NOW + 59 * 60)
    assert usage_in(state, NOW + 3 * 60 * 60) == Usage(sent=0, held=0, limit=10, last_held_at=NOW + 59 * 60)


@pytest.mark.parametrize("stored", [{"sent": "x"}, {"sent": {"soon": 5, "1": -3, "2": "9"}}, {"limit": "3", "last_held": []}])
def test_a_malformed_meter_counts_as_nothing(stored):
    assert usage_in(stored, NOW) == Usage()
    assert counted(stored, 1, 1, NOW)[1]


@pytest.fixture
def program(tmp_path: Path) -> Path:
    """The program installed as the stack installs it: sieve-execute/mailss-outbound beside outbound/."""
    (tmp_path / "sieve-execute").mkdir()
    (tmp_path / "outbound").mkdir()
    installed = tmp_path / "sieve-execute" / "mailss-outbound"
    shutil.copy(outbound_meter.__file__, installed)
    return installed


def run(program: Path, *args: str, user: str | None = ADDRESS) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], **({"USER": user} if user is not None else {})}
    return subprocess.run([sys.executable, "-I", str(program), *args], env=env, capture_output=True, text=True,
                          timeout=30, cwd=program.parent)


def test_the_program_says_yes_until_the_limit_then_holds_and_logs(program: Path):
    answers = [run(program, "2", "5") for _ in range(3)]

    assert [a.returncode for a in answers] == [0, 0, 1]
    assert answers[0].stderr == answers[1].stderr == ""
    assert answers[2].stderr == (f"mailss-outbound: {ADDRESS} is over its 5 messages an hour: 2 held "
                                 "(kept in the mailbox, not sent)\n")
    usage = read_usage(program.parent.parent / "outbound", ADDRESS.upper())
    assert (usage.sent, usage.held, usage.limit) == (4, 2, 5)


def test_the_meter_is_readable_by_its_group_whatever_the_umask(program: Path):
    os.umask(0o077)
    try:
        run(program, "1", "5")
    finally:
        os.umask(0o022)

    meter = meter_path(program.parent.parent / "outbound", ADDRESS)
    assert stat.S_IMODE(meter.stat().st_mode) == 0o640
    assert ADDRESS not in meter.name


@pytest.mark.parametrize("args", [(), ("1",), ("0", "5"), ("-1", "5"), ("1", "0"), ("x", "5"), ("1", "5", "6"),
                                  ("²", "5"), ("100001", "5"), ("1", "10000001")])
def test_arguments_that_are_not_ours_send_nothing(program: Path, args):
    answer = run(program, *args)

    assert answer.returncode == 2 and "nothing sent" in answer.stderr
    assert not any((program.parent.parent / "outbound").iterdir())


def test_without_an_account_nothing_is_sent(program: Path):
    assert run(program, "1", "5", user=None).returncode == 2


def test_a_writer_killed_midway_leaves_a_meter_that_still_reads(program: Path):
    """The new text is written over the old before the old tail is cut: a meter with a tail left
    over reads as its first JSON value."""
    run(program, "3", "5")
    meter = meter_path(program.parent.parent / "outbound", ADDRESS)
    meter.write_text(meter.read_text() + '{"sent": {"1": 999}}  garbage')

    assert run(program, "2", "5").returncode == 0
    assert run(program, "1", "5").returncode == 1
    assert json.loads(meter.read_text())["limit"] == 5


def test_deliveries_at_once_never_send_past_the_limit(program: Path):
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(lambda _: run(program, "1", "10").returncode, range(24)))

    assert sorted(codes) == [0] * 10 + [1] * 14
    assert read_usage(program.parent.parent / "outbound", ADDRESS).sent == 10


async def test_the_rules_service_shows_the_hour_and_its_own_setting_before_any_mail(program: Path):
    folder = program.parent.parent / "outbound"
    before = await OutboundMeters(folder, per_hour=3000).view(ADDRESS)
    run(program, "4", "4")
    run(program, "1", "4")
    after = await OutboundMeters(folder, per_hour=3000).view(ADDRESS)

    assert before == {"per_hour": 3000, "sent_last_hour": 0, "held_last_hour": 0, "last_held_at": None}
    assert after["per_hour"] == 4 and after["sent_last_hour"] == 4 and after["held_last_hour"] == 1
    assert after["last_held_at"] is not None and after["last_held_at"].endswith("+00:00")


def test_a_sweep_takes_idle_meters_and_leaves_busy_and_recent_ones(program: Path):
    folder, now = program.parent.parent / "outbound", time.time()
    for address in ("idle@example.jp", "busy@example.jp", "recent@example.jp"):
        ask(folder, address, 1, 5, now)
    for address in ("idle@example.jp", "busy@example.jp"):
        os.utime(meter_path(folder, address), (now - 3 * 3600, now - 3 * 3600))
    (folder / "not-a-meter").write_text("")
    busy = os.open(meter_path(folder, "busy@example.jp"), os.O_RDWR)
    fcntl.flock(busy, fcntl.LOCK_EX)
    try:
        assert sweep(folder, now) == 1
    finally:
        os.close(busy)

    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [meter_path(folder, "busy@example.jp").name, meter_path(folder, "recent@example.jp").name, "not-a-meter"])


def test_a_meter_swept_while_a_delivery_waited_for_it_is_made_again(program: Path):
    """Ensure the count of a delivery that opened a meter just before a sweep removed it is not lost."""
    folder = program.parent.parent / "outbound"
    ask(folder, ADDRESS, 1, 5, NOW)
    path = meter_path(folder, ADDRESS)
    stale = os.open(path, os.O_RDWR)
    fcntl.flock(stale, fcntl.LOCK_EX)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(ask, folder, ADDRESS, 2, 5, NOW + 1)
        os.unlink(path)  # as a sweep does, holding the lock
        os.close(stale)
        assert waiting.result(timeout=10)

    assert read_usage(folder, ADDRESS, NOW + 1).sent == 2  # counted in the new meter, not the removed one


async def test_an_unreadable_meter_shows_nothing_known_and_says_why(program: Path, caplog):
    folder = program.parent.parent / "outbound"
    run(program, "1", "5")
    meter_path(folder, ADDRESS).write_bytes(b'{"limit": 5, "sent": {"\xff": 1}}')
    assert (await OutboundMeters(folder, per_hour=9).view(ADDRESS))["per_hour"] == 5  # a bad byte spoils nothing else

    meter_path(folder, ADDRESS).unlink()
    meter_path(folder, ADDRESS).mkdir()  # a read that fails
    assert (await OutboundMeters(folder, per_hour=9).view(ADDRESS))["sent_last_hour"] == 0
    assert "unreadable" in caplog.text
