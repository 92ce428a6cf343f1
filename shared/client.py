"""Request/reply client for commands, as a gateway (or mailctl, tests, benchmarks) uses it.

Publishes persistent, mandatory, confirmed commands to `commands` with the service as routing
key, the account in `x-account` and the current span's trace context (W3C `traceparent`), and
waits for the reply on RabbitMQ's direct reply-to.
"""

import asyncio
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from pydantic import TypeAdapter

from shared.contracts.base import Accepted, AnonymousCommand, Command, Rejected, Reply
from shared.messaging.broker import broker_user
from shared.telemetry import trace_headers
from shared.topology import ACCOUNT_KEY_HEADER, COMMANDS, DIRECT_REPLY_TO

_replies: TypeAdapter[Accepted | Rejected] = TypeAdapter(Reply)


class CommandClient:
    def __init__(self, connection: AbstractRobustConnection, user: str | None = None) -> None:
        self._connection = connection
        self._user = user
        """its broker user, named in each command's `user_id` (RabbitMQ refuses any other): the receiving
        service checks that this sender may send that command"""
        self._waiting: dict[str, asyncio.Future[Accepted | Rejected]] = {}
        self._channel: AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._opening = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str) -> "CommandClient":
        client = cls(await aio_pika.connect_robust(url), broker_user(url))
        connection_reconnected = client._connection.reconnect_callbacks
        connection_reconnected.add(client._forget_channel)
        await client._ready()
        return client

    @property
    def connected(self) -> bool:
        return not self._connection.is_closed and self._connection.connected.is_set()

    def _forget_channel(self, *_: Any) -> None:
        # direct reply-to is not a real queue: a restored channel has lost its reply consumer
        self._channel = None

    async def _ready(self) -> aio_pika.abc.AbstractExchange:
        async with self._opening:
            if self._channel is None or self._channel.is_closed or self._exchange is None:
                await self._connection.connected.wait()
                self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
                self._channel.close_callbacks.add(self._forget_channel)
                self._exchange = await self._channel.get_exchange(COMMANDS, ensure=False)
                reply_queue = await self._channel.get_queue(DIRECT_REPLY_TO, ensure=False)
                await reply_queue.consume(self._on_reply, no_ack=True)
            return self._exchange

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._waiting.pop(message.correlation_id or "", None)
        if future and not future.done():
            future.set_result(_replies.validate_json(message.body))

    async def request(self, service: str, command: Command | AnonymousCommand, *, timeout: float = 30.0,
                      body: bytes | None = None) -> Accepted | Rejected:
        correlation_id = str(command.message_id)
        future: asyncio.Future[Accepted | Rejected] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        try:
            await self.send(service, command, reply_to=DIRECT_REPLY_TO, body=body)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(correlation_id, None)

    async def send(self, service: str, command: Command | AnonymousCommand, *, reply_to: str | None = None,
                   body: bytes | None = None, headers: dict[str, Any] | None = None) -> None:
        """Publish without waiting for a reply (body/headers overridable to send raw test input)."""
        key = command.subject_key()
        exchange = await self._ready()
        await exchange.publish(
            aio_pika.Message(
                body if body is not None else command.model_dump_json().encode(),
                content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(command.message_id), correlation_id=str(command.message_id),
                reply_to=reply_to, headers={ACCOUNT_KEY_HEADER: key, **trace_headers(), **(headers or {})},
                user_id=self._user,
            ),
            routing_key=service, mandatory=True,
        )

    async def close(self) -> None:
        await self._connection.close()
