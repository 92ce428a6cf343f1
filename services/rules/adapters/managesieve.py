"""The account's active Sieve script, written over ManageSieve as the Dovecot master user acting for
the account (SASL PLAIN with an authorization id), so no account password is ever needed."""

import asyncio
import contextlib
from dataclasses import dataclass

from sievelib.managesieve import Client, Error  # type: ignore[import-untyped]

SCRIPT_NAME = "rules"


class MailServerUnavailable(ConnectionError):
    """ManageSieve does not answer or refuses the login: try again later."""


class ScriptRefused(Exception):
    """Dovecot refused the script itself: trying again would not help."""


@dataclass(frozen=True)
class ManageSieve:
    host: str
    port: int
    master_user: str
    master_password: str

    async def install(self, address: str, script: str) -> None:
        """Upload the script and make it the active one (idempotent)."""
        await asyncio.to_thread(self._install, address, script)

    def _install(self, address: str, script: str) -> None:
        client = Client(self.host, self.port)
        try:
            connected = client.connect(self.master_user, self.master_password, authz_id=address, authmech="PLAIN")
        except (TimeoutError, OSError, Error) as error:
            raise MailServerUnavailable(f"ManageSieve at {self.host}:{self.port}: {error}") from None
        if not connected:
            raise MailServerUnavailable(f"ManageSieve refused the login for {address}: {client.errmsg!r}")
        try:
            if not client.putscript(SCRIPT_NAME, script):
                raise ScriptRefused(f"PUTSCRIPT refused: {client.errmsg!r}")
            if not client.setactive(SCRIPT_NAME):
                raise ScriptRefused(f"SETACTIVE refused: {client.errmsg!r}")
        except (OSError, Error) as error:
            raise MailServerUnavailable(f"ManageSieve at {self.host}:{self.port}: {error}") from None
        finally:
            with contextlib.suppress(OSError, Error):
                client.logout()
