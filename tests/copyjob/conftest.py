"""The copy job's test fixtures (the other provider's IMAP server, `source_server`, is in tests/conftest.py:
the panel's tests use it too, and one session runs one)."""

import pytest


@pytest.fixture
def copyjob_service_log(copyjob_service):
    """What the copy job service has logged so far (its spans too: OTEL_EXPORTER=console)."""
    return lambda: copyjob_service.log_path.read_text(errors="replace")
