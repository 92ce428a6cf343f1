"""Spans of this test process, kept in memory (the global tracer provider can be set only once per process,
so the exporter is added to whichever SDK provider is there)."""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_EXPORTER: list[InMemorySpanExporter] = []


def memory_spans() -> InMemorySpanExporter:
    """The process's one in-memory exporter, cleared."""
    if not _EXPORTER:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        _EXPORTER.append(InMemorySpanExporter())
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER[0]))
    _EXPORTER[0].clear()
    return _EXPORTER[0]
