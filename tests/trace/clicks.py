"""The trace a click on the real panel started: its root is the gateway's request span (the gateway exports
its spans to the session's span folder like every service, tests/conftest.py gateway_env)."""

from pathlib import Path

from tests.support import eventually, exported_spans
from tests.trace.test_one_trace import Trace


def _roots(spans_dir: Path, route: str) -> list[dict]:
    return [s for s in exported_spans(spans_dir) if s["name"].startswith(route) and s["parent_id"] is None
            and s["resource"]["attributes"].get("service.name") == "mailss-gateway"]


async def click_trace(spans_dir: Path, route: str, *names: str) -> tuple[dict, Trace]:
    """The latest request span whose name starts with `route` (e.g. "POST /accounts/"), and its whole trace once
    it holds a span of every name given."""

    def current() -> tuple[dict, Trace] | None:
        for root in reversed(_roots(spans_dir, route)):
            trace_id = root["context"]["trace_id"]
            found = Trace([s for s in exported_spans(spans_dir) if s["context"]["trace_id"] == trace_id])
            if set(names) <= {s["name"] for s in found.spans}:
                return root, found
        return None

    async def whole() -> bool:
        return current() is not None

    await eventually(whole, timeout=60, what=f"a click on {route} traced through {names}")
    found = current()
    assert found is not None
    return found
