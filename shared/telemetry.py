"""OpenTelemetry per process: a tracer provider, the W3C trace context carried in AMQP headers, and the
spans the kit opens per message. Spans carry ids, counts and outcomes, never bodies or secrets."""

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from shared.settings import TelemetrySettings

TRACEPARENT = "traceparent"
CAUSE = "mailss.cause"
"""baggage: the traceparent of the action that caused a sweep's or retry's work"""
ATTRIBUTE_FIELDS: Mapping[str, str] = {
    "address": "mailss.account", "job_id": "mailss.job_id", "folder": "mailss.folder",
    "source_folder": "mailss.folder", "notification_id": "mailss.notification_id", "version": "mailss.version",
    "kind": "mailss.kind", "step": "mailss.step", "chunk": "mailss.chunk", "outcome": "mailss.outcome",
    "copied": "mailss.copied", "already_there": "mailss.already_there", "too_big": "mailss.too_big",
    "skipped": "mailss.skipped", "removed": "mailss.removed", "total": "mailss.total", "attempts": "mailss.attempts",
    "plan": "mailss.plan", "generation": "mailss.generation",
}
"""Message fields a span names (an allow-list: no field outside it, so never a password or a token)."""


class JsonLinesExporter(SpanExporter):
    """One JSON object per line and span, in a file of this process's own (tests join them by trace id)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._file.write("".join(span.to_json(indent=None) + "\n" for span in spans))
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


def _exporter(service: str, settings: TelemetrySettings) -> SpanExporter | None:
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint
        return OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces") if endpoint else OTLPSpanExporter()
    if settings.otel_exporter == "console":
        return ConsoleSpanExporter()
    if settings.otel_exporter == "file" and settings.otel_exporter_file_dir:
        return JsonLinesExporter(settings.otel_exporter_file_dir / f"{service}-{settings.instance}-{os.getpid()}.jsonl")
    return None


def make_tracer_provider(service: str, settings: TelemetrySettings) -> TracerProvider | None:
    """The process's provider, or none with nowhere to export (OTEL_EXPORTER=none): spans then cost next to
    nothing and a received trace context still passes through to what the process sends."""
    if (exporter := _exporter(service, settings)) is None:
        return None
    resource = Resource.create({"service.name": f"mailss-{service}", "service.instance.id": settings.instance})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    return provider


def tracer() -> trace.Tracer:
    return trace.get_tracer("mailss")


def trace_headers() -> dict[str, str]:
    """The current span's context as W3C headers (none outside a span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_of(headers: Mapping[str, Any] | None, *, with_baggage: bool = True) -> Context | None:
    """The context a message's headers carry, or None when they carry none; a client's baggage is not
    taken (it could name any trace as the cause of what its command changes)."""
    carrier = {k: v for k, v in (headers or {}).items() if isinstance(v, str) and (with_baggage or k != "baggage")}
    return propagate.extract(carrier) if TRACEPARENT in carrier else None


def link_to(headers: Mapping[str, Any] | None) -> Link | None:
    """A link to the span stored headers name (an action that caused later work)."""
    if (context := context_of(headers)) is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return Link(span_context) if span_context.is_valid else None


@contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, parent: Context | None = None,
         links: Sequence[Link] = (), attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A span as the current one, under `parent` (a received context, its baggage too) if given; a failure
    sets its status to the exception's type only (an exception's text may quote input: never recorded)."""
    token = otel_context.attach(parent) if parent is not None else None
    try:
        with tracer().start_as_current_span(name, kind=kind, links=links, attributes=attributes,
                                            record_exception=False, set_status_on_exception=False) as current:
            try:
                yield current
            except BaseException as error:
                current.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise
    finally:
        if token is not None:
            otel_context.detach(token)


def describe(message: Any) -> None:
    """Name the current span after the message's type and note its allow-listed fields."""
    current = trace.get_current_span()
    current.update_name(type(message).__name__)
    current.set_attributes(attributes_of(message))


def attributes_of(message: Any) -> dict[str, str | int | bool]:
    found: dict[str, str | int | bool] = {}
    for field, attribute in ATTRIBUTE_FIELDS.items():
        value = getattr(message, field, None)
        if isinstance(value, str | int | bool):
            found[attribute] = value
    return found


def note(**attributes: str | int | bool) -> None:
    """Attributes of the current span, as `mailss.<name>`."""
    trace.get_current_span().set_attributes({f"mailss.{name}": value for name, value in attributes.items()})


def outcome(value: str, *, failed: bool = False) -> None:
    current = trace.get_current_span()
    current.set_attribute("mailss.outcome", value)
    if failed:
        current.set_status(Status(StatusCode.ERROR, value))


@contextmanager
def caused_by(headers: Mapping[str, Any] | None) -> Iterator[None]:
    """Work that comes without a trace (a sweep, a retry) but has a stored cause: the current span links to
    it, and the cause travels on as baggage with everything sent meanwhile, so what that work leads to
    (a second retry...) still names the first cause (`cause`), not the retry."""
    if (link := link_to(headers)) is None:
        yield
        return
    trace.get_current_span().add_link(link.context, {"mailss.link": "caused by"})
    token = otel_context.attach(baggage.set_baggage(CAUSE, str((headers or {})[TRACEPARENT])))
    try:
        yield
    finally:
        otel_context.detach(token)


def cause() -> dict[str, str]:
    """What to store as the cause of a change: the cause the current work carries, else its own context."""
    carried = baggage.get_baggage(CAUSE)
    return {TRACEPARENT: str(carried)} if carried else trace_headers()
