"""The broker factory against the real RabbitMQ."""

import pytest
from faststream.rabbit import RabbitExchange

from shared.messaging.broker import make_broker


async def test_unroutable_message_raises(amqp_url, account_service):
    """Ensure a mandatory publish that no queue takes raises instead of vanishing."""
    broker = make_broker(amqp_url, app_id="test", connection_name="test")
    await broker.connect()
    try:
        with pytest.raises(Exception, match=r"NO_ROUTE|[Rr]eturn"):
            await broker.publish(b"{}", exchange=RabbitExchange("commands", declare=False),
                                 routing_key="no-such-service", persist=True, mandatory=True)
    finally:
        await broker.stop()
