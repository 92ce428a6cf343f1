"""What the gateway needs from outside: a way to ask a service and hear its answer."""

from typing import Protocol

from shared.contracts.base import Accepted, AnonymousCommand, Command, Rejected


class Bus(Protocol):
    async def ask(self, service: str, command: Command | AnonymousCommand) -> Accepted | Rejected:
        """The service's reply; a reply of code `unavailable` when none came in time."""
        ...
