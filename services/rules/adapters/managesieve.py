"""The account's active Sieve script, written over ManageSieve as the Dovecot master user acting for
the account (SASL PLAIN with an authorization id), so no account password is ever needed.

Each version is its own script, `rules-v<version>`: a worker uploads its version, then activates
the newest version present (its own, or a newer one another worker uploaded meanwhile), then
deletes what is older than the active one. So workers may deploy the same account at once (several
processes, several items) and the mail server only ever moves forward, ending on the newest rules.
"""

import asyncio
import contextlib
import re
import warnings
from dataclasses import dataclass

from sievelib.managesieve import Client, Error  # type: ignore[import-untyped]

# Dovecot listens on loopback (compose: the private network) and trusts it; sievelib warns on every
# plaintext login.
warnings.filterwarnings("ignore", message="Credentials are sent over an unencrypted connection")

SCRIPT_PREFIX = "rules-v"
VERSIONED = re.compile(rf"^{SCRIPT_PREFIX}(\d+)$")


class MailServerUnavailable(ConnectionError):
    """ManageSieve does not answer or refuses the login: try again later."""


class ScriptRefused(Exception):
    """Dovecot refused the script itself: trying again would not help."""


def _version(name: str | None) -> int:
    found = VERSIONED.match(name or "")
    return int(found[1]) if found else 0


@dataclass(frozen=True)
class ManageSieve:
    host: str
    port: int
    master_user: str
    master_password: str

    async def install(self, address: str, script: str, version: int) -> int:
        """Upload `version` and make the newest uploaded version active; return the active version."""
        return await asyncio.to_thread(self._install, address, script, version)

    def _install(self, address: str, script: str, version: int) -> int:
        client = Client(self.host, self.port)
        try:
            connected = client.connect(self.master_user, self.master_password, authz_id=address, authmech="PLAIN")
        except (OSError, Error) as error:
            raise MailServerUnavailable(f"ManageSieve at {self.host}:{self.port}: {error}") from None
        if not connected:
            raise MailServerUnavailable(f"ManageSieve refused the login for {address}: {client.errmsg!r}")
        try:
            return self._activate_newest(client, script, version)
        except (OSError, Error) as error:
            raise MailServerUnavailable(f"ManageSieve at {self.host}:{self.port}: {error}") from None
        finally:
            with contextlib.suppress(OSError, Error):
                client.logout()

    def _activate_newest(self, client: Client, script: str, version: int) -> int:
        """Never activates anything but the newest version present, so the active script never goes
        back; then deletes the versions older than the active one (its own included, if superseded)."""
        active, _ = client.listscripts()
        if _version(active) >= version:
            return _version(active)  # a newer (or the same) version is live already
        if not client.putscript(f"{SCRIPT_PREFIX}{version}", script):
            raise ScriptRefused(f"PUTSCRIPT refused: {client.errmsg!r}")
        active, others = client.listscripts()
        newest = max([_version(active), *(_version(name) for name in others)])
        if newest > _version(active):
            client.setactive(f"{SCRIPT_PREFIX}{newest}")
        active, others = client.listscripts()
        for old in others:
            if _version(old) < _version(active) or old == "rules":
                client.deletescript(old)
        return _version(active)
