"""Composition root of the gateway: settings, the broker client, the pages, the HTTP server."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from services.gateway.adapters.broker import BrokerBus
from services.gateway.adapters.pages import Pages
from services.gateway.adapters.tracing import UntrustedTraceContext
from services.gateway.adapters.web import Gateway, build_app
from services.gateway.application.panel import Panel
from services.gateway.domain.forms import FormKeys
from services.gateway.domain.throttle import AttemptLimit
from services.gateway.settings import GatewaySettings
from shared.auth import TokenVerifier, load_public_key
from shared.client import CommandClient
from shared.telemetry import make_tracer_provider


def make_app(settings: GatewaySettings) -> FastAPI:
    bus = BrokerBus(settings.gateway_command_timeout_s)
    gateway = Gateway(
        panel=Panel(bus), pages=Pages(), forms=FormKeys(settings.gateway_form_secret.get_secret_value().encode()),
        verifier=TokenVerifier(load_public_key(settings.session_public_key)),
        attempts=AttemptLimit({"login": settings.gateway_sign_in_attempts,
                               "client": settings.gateway_sign_in_attempts_per_client}, settings.gateway_sign_in_window_s),
        hsts=settings.gateway_hsts, healthy=bus.healthy)
    app = build_app(gateway)
    make_tracer_provider("gateway", settings)  # FastAPI's request spans use it (adapters/tracing.py)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        bus.client = client = await CommandClient.connect(settings.amqp_url.get_secret_value())
        try:
            yield
        finally:
            await client.close()

    app.router.lifespan_context = lifespan
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = GatewaySettings()
    server = uvicorn.Config(
        UntrustedTraceContext(make_app(settings)), interface="asgi3", host=settings.gateway_host,
        port=settings.gateway_port, proxy_headers=bool(settings.gateway_forwarded_allow_ips),
        forwarded_allow_ips=settings.gateway_forwarded_allow_ips or None, server_header=False, date_header=False,
        access_log=False, log_config=None)
    uvicorn.Server(server).run()
