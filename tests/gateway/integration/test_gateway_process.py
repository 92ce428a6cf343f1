"""The panel's process as scripts/start.sh runs it: its own unprivileged user, on loopback only."""

import pwd
from pathlib import Path

import pytest

from tests.support import FrontProcess, listening_addresses

pytestmark = pytest.mark.integration
LOOPBACK = {"0100007F", "00000000000000000000000001000000"}


def test_the_panel_listens_on_loopback_only_as_its_own_user(gateway: FrontProcess) -> None:
    assert listening_addresses(gateway.port) <= LOOPBACK and listening_addresses(gateway.port)
    assert gateway.process is not None
    uid = int(next(line for line in Path(f"/proc/{gateway.process.pid}/status").read_text().splitlines()
                   if line.startswith("Uid:")).split()[1])
    assert pwd.getpwuid(uid).pw_name == "mailss-gateway"
