"""What a mailbox holds, read from Dovecot's own quota count (Maildir++ `maildirsize`)."""

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from services.account.adapters.mail_homes import MailHomes
from services.account.application.ports import MailboxUsage


async def test_the_count_is_the_sum_of_dovecots_lines_after_its_limits(tmp_path: Path):
    homes = MailHomes(tmp_path)
    maildir = homes.path_of("taro@example.jp", "ab12") / "Maildir"
    maildir.mkdir(parents=True)
    (maildir / "maildirsize").write_text("0S\n802020 40\n1000 1\n-1000 -1\nnot a line\n5 x\n")

    assert await homes.usage("taro@example.jp", "ab12") == MailboxUsage(bytes=802_020, messages=40)


async def test_a_mailbox_no_mail_reached_yet_holds_nothing(tmp_path: Path):
    assert await MailHomes(tmp_path).usage("new@example.jp", "cd34") == MailboxUsage()


async def test_a_count_dovecot_keeps_to_itself_is_not_known(tmp_path: Path, monkeypatch):
    """A home from before Maildir/ was made by this service: Dovecot's file is 0600, the mail user's."""
    homes = MailHomes(tmp_path)
    maildir = homes.path_of("old@example.jp", "ef56") / "Maildir"
    maildir.mkdir(parents=True)
    (maildir / "maildirsize").write_text("0S\n10 1\n")
    real_open = os.open

    def refused(path, flags, *args, **kwargs):  # tests run as root, whom no mode stops
        if str(path) == "maildirsize":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    assert await homes.usage("old@example.jp", "ef56") is None


@pytest.mark.parametrize("trap", ["fifo", "link to a file", "link to /dev/zero", "linked Maildir", "linked home", "folder"])
async def test_what_the_mail_user_plants_is_never_followed_nor_waited_on(tmp_path: Path, trap: str):
    """The mail user may write in the home: a FIFO would block a shard for ever, a link would read
    another file (or /dev/zero without end). None is read: the usage is not known."""
    homes = MailHomes(tmp_path / "mail")
    home = homes.path_of("taro@example.jp", "ab12")
    (home / "Maildir").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text("0S\n999 9\n")
    count = home / "Maildir" / "maildirsize"
    plant = {"fifo": lambda: os.mkfifo(count), "link to a file": lambda: count.symlink_to(secret),
             "link to /dev/zero": lambda: count.symlink_to("/dev/zero"), "folder": lambda: count.mkdir()}
    if trap == "linked Maildir":
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "maildirsize").write_text("0S\n999 9\n")
        (home / "Maildir").rmdir()
        (home / "Maildir").symlink_to(tmp_path / "elsewhere")
    elif trap == "linked home":
        other = homes.path_of("hanako@example.jp", "cd34")
        (other / "Maildir").mkdir(parents=True)
        (other / "Maildir" / "maildirsize").write_text("0S\n999 9\n")
        shutil.rmtree(home)
        home.symlink_to(other)
    else:
        plant[trap]()

    assert await asyncio.wait_for(homes.usage("taro@example.jp", "ab12"), timeout=5) is None


async def test_lines_that_are_no_count_are_skipped(tmp_path: Path):
    homes = MailHomes(tmp_path)
    maildir = homes.path_of("taro@example.jp", "ab12") / "Maildir"
    maildir.mkdir(parents=True)
    (maildir / "maildirsize").write_text("0S\n--5 1\n" + "9" * 5000 + " 1\n100 2\n1e3 1\n 7 1 \n")

    assert await homes.usage("taro@example.jp", "ab12") == MailboxUsage(bytes=107, messages=3)


async def test_a_new_home_has_its_maildir_made_by_the_service(tmp_path: Path):
    """Dovecot then takes the group's mode for what it makes there: its quota count stays readable."""
    homes = MailHomes(tmp_path)
    await homes.make("new@example.jp", "ab12")

    maildir = homes.path_of("new@example.jp", "ab12") / "Maildir"
    assert maildir.is_dir() and maildir.stat().st_mode & 0o7777 == 0o2770
