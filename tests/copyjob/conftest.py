"""The copy job's own fixtures (the other provider's IMAP server, `source_server`, is in tests/conftest.py:
the trace tests and the panel's tests use it too, and one session runs one)."""

import pytest

from tests.support import exported_text


@pytest.fixture
def copyjob_service_log(copyjob_service, spans_dir):
    """What the copy job service has logged so far, and the spans every process exported."""
    return lambda: copyjob_service.log_path.read_text(errors="replace") + exported_text(spans_dir)
