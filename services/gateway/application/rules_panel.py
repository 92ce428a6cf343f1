"""What the mail settings pages ask of the rules service: one command per action.

As in panel.py, nothing is decided here: the rules service authorizes and judges every change.
"""

from collections.abc import Callable
from dataclasses import dataclass

from services.gateway.application.panel import Reply, ask_built
from services.gateway.application.ports import Bus
from shared.contracts.rules import (
    SERVICE,
    AddForwarding,
    DeleteAutoreply,
    GetRules,
    RemoveForwarding,
    RulesCommand,
    SetAutoreply,
    SetReceive,
    SetSpamSort,
    SetSpamTag,
)

SWITCHES: dict[str, type[SetSpamTag] | type[SetSpamSort] | type[SetReceive]] = {
    "spam_tag": SetSpamTag, "spam_sort": SetSpamSort, "receive": SetReceive}
"""the on/off settings, by the name the pages use"""


@dataclass(frozen=True)
class RulesPanel:
    bus: Bus

    async def rules(self, token: str, address: str) -> Reply:
        return await self._ask(lambda: GetRules(actor_token=token, address=address))

    async def switch(self, token: str, address: str, setting: str, on: bool, accept_loss: bool = False) -> Reply:
        command = SWITCHES[setting]
        if command is SetReceive:
            return await self._ask(lambda: SetReceive(actor_token=token, address=address, on=on, accept_loss=accept_loss))
        return await self._ask(lambda: command(actor_token=token, address=address, on=on))

    async def add_forwarding(self, token: str, address: str, condition: str, match: str, destinations: list[str]) -> Reply:
        return await self._ask(lambda: AddForwarding(actor_token=token, address=address, condition=condition,
                                                     match=match, destinations=destinations))

    async def remove_forwarding(self, token: str, address: str, entry_id: str, accept_loss: bool) -> Reply:
        return await self._ask(lambda: RemoveForwarding(actor_token=token, address=address, entry_id=entry_id,
                                                        accept_loss=accept_loss))

    async def set_autoreply(self, token: str, address: str, text: str, include_original: bool) -> Reply:
        return await self._ask(lambda: SetAutoreply(actor_token=token, address=address, text=text,
                                                    include_original=include_original))

    async def delete_autoreply(self, token: str, address: str) -> Reply:
        return await self._ask(lambda: DeleteAutoreply(actor_token=token, address=address))

    async def _ask(self, build: Callable[[], RulesCommand]) -> Reply:
        return await ask_built(self.bus, SERVICE, build)
