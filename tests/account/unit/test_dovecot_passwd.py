"""The passwd-file writer's memory of what it wrote never hides a change someone else made."""

import stat
from pathlib import Path

from services.account.adapters.dovecot_passwd import DovecotPasswdFiles
from services.account.adapters.mail_homes import MailHomes

ADDRESS = "a@example.jp"


def files_in(tmp_path):
    (tmp_path / "passwd.d").mkdir(exist_ok=True)
    (tmp_path / "mail").mkdir(exist_ok=True)
    return DovecotPasswdFiles(tmp_path / "passwd.d", MailHomes(tmp_path / "mail"))


async def test_a_line_names_the_accounts_own_home(tmp_path):
    """Ensure a line carries the home of that account's generation in Dovecot's home field, and the
    quota in the extra fields."""
    files = files_in(tmp_path)
    await files.grant(ADDRESS, "h1", 100, "00ab")

    user, password, uid, gid, gecos, home, shell, extra = files.path_of(ADDRESS).read_text().strip().split(":", 7)
    assert (user, password, home) == (ADDRESS, "{ARGON2ID}h1", f"{tmp_path}/mail/example.jp/a+00ab")
    assert (Path(home) / "sieve").is_dir()  # made before Dovecot needs it, with the home's group mode
    assert stat.S_IMODE(Path(home).stat().st_mode) == stat.S_IMODE((Path(home) / "sieve").stat().st_mode) == 0o2770
    assert (uid, gid, gecos, shell, extra) == ("", "", "", "", "userdb_quota_rule=*:storage=100M")


async def test_a_line_another_instance_wrote_is_revoked_again(tmp_path):
    """Ensure an instance that once revoked a line revokes it again after another instance granted it
    (the shard moved there and back), although its own last word was the same."""
    first, second = files_in(tmp_path), files_in(tmp_path)
    await first.grant(ADDRESS, "h1", None, "")
    await first.revoke(ADDRESS)
    await second.grant(ADDRESS, "h2", None, "")

    await first.revoke(ADDRESS)

    assert ADDRESS not in first.path_of(ADDRESS).read_text()


async def test_an_unchanged_line_is_not_written_again(tmp_path):
    """Ensure granting the same line twice leaves the file as it was (no rewrite, same inode)."""
    files = files_in(tmp_path)
    await files.grant(ADDRESS, "h1", 100, "")
    before = files.path_of(ADDRESS).stat()

    await files.grant(ADDRESS, "h1", 100, "")

    after = files.path_of(ADDRESS).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
