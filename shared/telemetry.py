"""OpenTelemetry tracer provider per service. Spans carry ids and routing keys, never bodies."""

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from shared.settings import ServiceSettings


def _exporter(settings: ServiceSettings) -> SpanExporter | None:
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint
        return OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces") if endpoint else OTLPSpanExporter()
    if settings.otel_exporter == "console":
        return ConsoleSpanExporter()
    return None


def make_tracer_provider(service: str, settings: ServiceSettings) -> TracerProvider:
    resource = Resource.create({"service.name": f"mailss-{service}", "service.instance.id": settings.instance})
    provider = TracerProvider(resource=resource)
    if exporter := _exporter(settings):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider
