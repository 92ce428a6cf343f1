"""The request's span is FastAPI's own (its native OpenTelemetry support: a server span per request
named after the route, e.g. `POST /login`, and spans for the dependencies and the endpoint), made
with the gateway's tracer provider; the command client then puts the current span's context into
every command the request sends, so the request is the root of everything it causes.

FastAPI would continue a trace context the request brings: a browser could then choose the trace
its actions land in. Those headers are dropped before FastAPI sees them."""

from starlette.types import ASGIApp, Receive, Scope, Send

TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


class UntrustedTraceContext:
    """Outside the FastAPI app: every request starts a trace of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "headers": [(name, value) for name, value in scope["headers"]
                                          if name.lower() not in TRACE_HEADERS]}
        await self.app(scope, receive, send)
