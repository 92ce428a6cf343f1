"""The copy job's small ports: the sealed source password (Fernet), the checked resolution of the
source host, and the account service's VerifyPassword over the bus."""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field

from cryptography.fernet import Fernet

from services.copyjob.domain.source_host import Address, HostRefused, Network, Source, check_all
from shared.client import CommandClient
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import VerifyPassword
from shared.contracts.base import Reply, SharedRejected

RESOLVE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class FernetVault:
    key: str

    def seal(self, secret: str) -> str:
        return Fernet(self.key.encode()).encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        return Fernet(self.key.encode()).decrypt(sealed.encode()).decode()


@dataclass(frozen=True)
class CheckedResolver:
    allowed: tuple[Network, ...] = ()

    @classmethod
    def allowing(cls, networks: list[str]) -> "CheckedResolver":
        return cls(tuple(ipaddress.ip_network(n) for n in networks))

    async def addresses(self, source: Source) -> list[Address]:
        if source.literal is not None:
            return check_all([source.literal], self.allowed)
        try:
            infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(source.host, None, type=socket.SOCK_STREAM),
                                           RESOLVE_TIMEOUT_S)
        except (OSError, TimeoutError):
            raise HostRefused(f"the source host {source.host} does not resolve", "not_resolving",
                              host=source.host) from None
        return check_all([ipaddress.ip_address(info[4][0]) for info in infos], self.allowed)


@dataclass
class BusPasswords:
    url: str
    _client: CommandClient | None = field(default=None, repr=False)

    async def verify(self, actor_token: str, address: str, password: str) -> Reply:
        if self._client is None:
            self._client = await CommandClient.connect(self.url)
        try:
            return await self._client.request(ACCOUNT, VerifyPassword(actor_token=actor_token, address=address,
                                                                      password=password), timeout=15)
        except TimeoutError:
            return SharedRejected(code="unavailable", message="the account service did not answer; try again")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
