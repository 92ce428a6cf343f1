"""The services, asked through the broker as the user `gateway` (request/reply, shared/client.py)."""

import asyncio
import logging

import aio_pika

from shared.client import CommandClient
from shared.contracts.base import Accepted, AnonymousCommand, Command, Rejected

log = logging.getLogger(__name__)


class BrokerBus:
    """Made before the server's event loop runs; `client` is set when the server starts."""

    def __init__(self, timeout_s: float) -> None:
        self.client: CommandClient | None = None
        self._timeout_s = timeout_s

    def healthy(self) -> bool:
        return self.client is not None and self.client.connected

    async def ask(self, service: str, command: Command | AnonymousCommand) -> Accepted | Rejected:
        """The reply, or `unavailable` within the timeout, however the broker fails (away, reconnecting,
        a channel closed under the publish)."""
        try:
            if self.client is None:
                raise ConnectionError("not connected yet")
            async with asyncio.timeout(self._timeout_s):
                return await self.client.request(service, command, timeout=self._timeout_s)
        except (TimeoutError, OSError, RuntimeError, aio_pika.exceptions.AMQPError) as error:
            log.warning("no answer from %s to %s: %s", service, type(command).__name__, type(error).__name__)
            return Rejected(command_id=command.message_id, code="unavailable",
                            message=f"the {service} service did not answer")
