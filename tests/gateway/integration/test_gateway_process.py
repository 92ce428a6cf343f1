"""The panel's process as scripts/start.sh runs it: its own unprivileged user (its listener is in
tests/stack/test_exposure.py)."""

import pwd
from pathlib import Path

import pytest

from tests.support import FrontProcess

pytestmark = pytest.mark.integration


def test_the_panel_runs_as_its_own_unprivileged_user(gateway: FrontProcess) -> None:
    assert gateway.process is not None
    status = Path(f"/proc/{gateway.process.pid}/status").read_text().splitlines()
    uid = int(next(line for line in status if line.startswith("Uid:")).split()[1])
    assert pwd.getpwuid(uid).pw_name == "mailss-gateway"
