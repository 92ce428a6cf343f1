"""The DeployRules worker: compile what is stored now and make it the account's active script. Runs
on the kit's work queue (never in a command's turn); ManageSieve away → retried with backoff where
it stands, after telling the account's turn once (RulesApplyFailed, GetRules says why)."""

import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from services.rules.adapters.managesieve import MailServerUnavailable, ScriptRefused
from services.rules.adapters.postfix_map import MapUnavailable
from services.rules.adapters.stored_rules import rules_of
from services.rules.domain.rules import forwarding_table
from services.rules.domain.sieve import Outside, compile_sieve
from shared.contracts.rules import DeployRules, PruneForwards, RecordDeployment
from shared.messaging.unit_of_work import Doc

log = logging.getLogger(__name__)


class Install(Protocol):
    async def __call__(self, address: str, script: str, version: int, *, incarnation: Hashable = None) -> int:
        """-> the version now active (a newer one if another worker got there). `incarnation` tells an
        address created again (a new home) from the one before."""
        ...


class ForwardTable(Protocol):
    async def put(self, entries: Mapping[str, Sequence[str]]) -> None: ...

    async def remove(self, keys: Iterable[str]) -> None: ...


Peek = Callable[[str], Awaitable[Doc | None]]
Send = Callable[[RecordDeployment], Awaitable[None]]


@dataclass
class Deployer:
    peek: Peek
    forward_map: ForwardTable
    install: Install
    send: Send
    outside: Outside
    _reported: set[str] = field(default_factory=set)
    """items whose failure was already reported: one RulesApplyFailed per item, not per retry"""

    async def __call__(self, item: DeployRules) -> None:
        doc = await self.peek(item.address)
        rules = rules_of(item.address, doc)
        if rules is None or (doc or {}).get("deployed_version", 0) >= rules.version:
            return  # dropped, or a later item (or an earlier attempt) got there first
        try:
            await self.forward_map.put(forwarding_table(rules))  # before any script can redirect there
            active = await self.install(item.address, compile_sieve(rules, self.outside), rules.version,
                                        incarnation=(doc or {}).get("generation"))
        except ScriptRefused as error:
            log.error("Dovecot refused the script of %s v%d: %s", item.address, rules.version, error)
            await self.send(RecordDeployment(address=item.address, version=rules.version, failure=str(error)[:500]))
            return
        except (MailServerUnavailable, MapUnavailable) as error:
            await self._report_once(item, rules.version, str(error))
            raise
        self._reported.discard(str(item.message_id))
        await self.send(RecordDeployment(address=item.address, version=active))

    async def _report_once(self, item: DeployRules, version: int, reason: str) -> None:
        if str(item.message_id) not in self._reported:
            self._reported.add(str(item.message_id))
            await self.send(RecordDeployment(address=item.address, version=version, failure=reason[:500]))


@dataclass(frozen=True)
class Pruner:
    """The PruneForwards worker: forwarding addresses no script can redirect to any more leave the map."""

    forward_map: ForwardTable

    async def __call__(self, item: PruneForwards) -> None:
        await self.forward_map.remove(item.keys)
