"""What a mailbox holds, read from Dovecot's own quota count (Maildir++ `maildirsize`)."""

from pathlib import Path

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

    def refused(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refused)  # tests run as root, whom no mode stops
    assert await homes.usage("old@example.jp", "ef56") is None


async def test_a_new_home_has_its_maildir_made_by_the_service(tmp_path: Path):
    """Dovecot then takes the group's mode for what it makes there: its quota count stays readable."""
    homes = MailHomes(tmp_path)
    await homes.make("new@example.jp", "ab12")

    maildir = homes.path_of("new@example.jp", "ab12") / "Maildir"
    assert maildir.is_dir() and maildir.stat().st_mode & 0o7777 == 0o2770
