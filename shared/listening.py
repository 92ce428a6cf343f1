"""A server on a fixed local port that one instance of a service holds at a time: another instance
finding it taken tries again every RETRY_S, so it takes over when the first goes."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

RETRY_S = 5.0


async def listen_when_free(start: Callable[[], Awaitable[object]], *, what: str, host: str, port: int) -> None:
    while True:
        try:
            await start()
            log.info("%s on %s:%d", what, host, port)
            return
        except OSError as error:
            log.warning("%s: %s:%d unavailable (%s); trying again in %.0f s", what, host, port, error.strerror, RETRY_S)
            await asyncio.sleep(RETRY_S)
