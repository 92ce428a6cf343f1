"""The other provider's IMAP server for the copy job's tests (tests/source_server.py)."""

from collections.abc import AsyncIterator

import pytest

from tests.source_server import SourceServer
from tests.support import RUN

SOURCE_DIR = RUN / "source-dovecot"


@pytest.fixture(scope="session")
async def source_server(test_ca) -> AsyncIterator[SourceServer]:
    server = await SourceServer.start(SOURCE_DIR, test_ca[1], test_ca[2])
    yield server
    server.stop()


@pytest.fixture
def copyjob_service_log(copyjob_service):
    """What the copy job service has logged so far (its spans too: OTEL_EXPORTER=console)."""
    return lambda: copyjob_service.log_path.read_text(errors="replace")
