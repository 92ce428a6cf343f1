"""What each page asks of the services: one command per action, built from what the form said.

Nothing is decided here: the services authorize and validate every command; the panel only turns a
form into the command and hands back the reply.
"""

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from services.gateway.application.ports import Bus
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import (
    ChangeComment,
    ChangePassword,
    ChangeQuota,
    CreateAccount,
    DeleteAccount,
    EndSession,
    GetAccount,
    ListAccounts,
    Login,
    SignOutEverywhere,
)
from shared.contracts.base import Accepted, AnonymousCommand, Command, Rejected
from shared.messaging.delivery import invalid

Reply = Accepted | Rejected


@dataclass(frozen=True)
class Panel:
    bus: Bus

    async def sign_in(self, login: str, password: str) -> Reply:
        return await self._ask(ACCOUNT, lambda: Login(login=login, password=password))

    async def end_session(self, token: str) -> Reply:
        return await self._ask(ACCOUNT, lambda: EndSession(actor_token=token))

    async def sign_out_everywhere(self, token: str, login: str) -> Reply:
        return await self._ask(ACCOUNT, lambda: SignOutEverywhere(actor_token=token, login=login))

    async def list_accounts(self, token: str, domain: str, prefix: str, after: str | None, limit: int) -> Reply:
        return await self._ask(ACCOUNT, lambda: ListAccounts(actor_token=token, domain=domain, prefix=prefix, after=after,
                                                             limit=limit))

    async def account(self, token: str, address: str) -> Reply:
        return await self._ask(ACCOUNT, lambda: GetAccount(actor_token=token, address=address))

    async def change_password(self, token: str, address: str, new_password: str, current_password: str | None) -> Reply:
        return await self._ask(ACCOUNT, lambda: ChangePassword(
            actor_token=token, address=address, new_password=new_password,
            current_password=current_password))

    async def create_account(self, token: str, address: str, plan: str, password: str, quota_mb: int | None,
                             comment: str) -> Reply:
        return await self._ask(ACCOUNT, lambda: CreateAccount(
            actor_token=token, address=address, plan=plan, initial_password=password,
            quota_mb=quota_mb, comment=comment))

    async def change_quota(self, token: str, address: str, quota_mb: int) -> Reply:
        return await self._ask(ACCOUNT, lambda: ChangeQuota(actor_token=token, address=address, quota_mb=quota_mb))

    async def change_comment(self, token: str, address: str, comment: str) -> Reply:
        return await self._ask(ACCOUNT, lambda: ChangeComment(actor_token=token, address=address, comment=comment))

    async def delete_account(self, token: str, address: str) -> Reply:
        return await self._ask(ACCOUNT, lambda: DeleteAccount(actor_token=token, address=address))

    async def _ask(self, service: str, build: Callable[[], Command | AnonymousCommand]) -> Reply:
        return await ask_built(self.bus, service, build)


async def ask_built(bus: Bus, service: str, build: Callable[[], Command | AnonymousCommand]) -> Reply:
    """The service's answer to the command `build` makes of a form; what the contract itself refuses (too
    long, missing) is said per field as the kit would, and nothing is sent."""
    try:
        command = build()
    except ValidationError as error:
        return Rejected(code="validation_failed", message="the form does not fit the command",
                        errors=invalid(error).errors)
    return await bus.ask(service, command)
