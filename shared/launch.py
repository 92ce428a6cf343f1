"""Starts one service with only the secrets the registry gives it, as its own user:
`python -m shared.launch <name>`.

scripts/start.sh runs every service through this, as root. The environment it inherits (the stack's
settings) loses every secret and every pointer to a secret file; then the service gets back only
what its registry entry lists: its own broker URL (its own broker user), and its secrets from
.run/secrets/services.env and the stack's secret files. What the secrets file holds that is no
secret (the public key, the first admin's login) goes to every service. Then it stops being root:
it becomes the service's own user (mailss-<name>, with that user's groups), so the secret files,
and every other service's, are out of its reach.
"""

import grp
import os
import pwd
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from shared.broker_access import Broker
from shared.registry import FRONTS, SERVICES, FrontEntry, ServiceEntry

SECRETS_FILE = Path(__file__).resolve().parent.parent / ".run" / "secrets" / "services.env"
SECRET_NAME = re.compile(r"PASSWORD|PRIVATE_KEY|API_KEY|NONCE|SECRET", re.IGNORECASE)
POINTERS = {"BROKER_SECRETS_DIR": None, "MAIL_POLICY_API_KEY_FILE": "MAIL_POLICY_API_KEY",
            "DOVECOT_MASTER_PASSWORD_FILE": "DOVECOT_MASTER_PASSWORD", "NOTIFIER_SMTP_PASSWORD_FILE": "SMTP_PASSWORD"}
"""variables naming where secrets are kept -> the secret their file holds (None: several)"""


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            values[name] = value[1:-1] if value[:1] == value[-1:] and value[:1] in "'\"" else value
    return values


def environment_for(entry: ServiceEntry | FrontEntry, inherited: Mapping[str, str], secrets_file: Mapping[str, str],
                    broker: Broker) -> dict[str, str]:
    entries: list[ServiceEntry | FrontEntry] = [*SERVICES.values(), *FRONTS.values()]
    listed = {name for e in entries for name in e.secrets}
    secret = listed | {name for name in (*inherited, *secrets_file) if SECRET_NAME.search(name)}
    env = {k: v for k, v in {**inherited, **secrets_file}.items() if k not in secret and k not in POINTERS}
    available = {**inherited, **secrets_file, "AMQP_URL": broker.url(entry.name)}
    for pointer, name in POINTERS.items():
        if name and pointer in inherited:
            available[name] = Path(inherited[pointer]).read_text().strip()
    env.update({name: available[name] for name in entry.secrets if name in available})
    return env


def credentials(user: str) -> tuple[int, int, list[int]]:
    """uid, primary gid and supplementary gids of a system user."""
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid, [g.gr_gid for g in grp.getgrall() if user in g.gr_mem]


def become(user: str) -> None:
    """Drop root for good: the user's own uid, primary group and supplementary groups."""
    uid, gid, groups = credentials(user)
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)


def main(argv: list[str]) -> None:
    entries: dict[str, ServiceEntry | FrontEntry] = {**SERVICES, **FRONTS}
    if len(argv) != 1 or argv[0] not in entries:
        sys.exit(f"usage: python -m shared.launch {{{','.join(entries)}}}")
    entry = entries[argv[0]]
    env = environment_for(entry, os.environ, read_env_file(SECRETS_FILE), Broker.from_env())
    if os.getuid() == 0:
        become(entry.user)
    os.execve(sys.executable, [sys.executable, "-m", entry.module], env)


if __name__ == "__main__":
    main(sys.argv[1:])
