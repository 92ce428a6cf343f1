"""The rules service for the kit: its spec and its one composition root."""

from collections.abc import Awaitable, Callable
from typing import Any

from services.rules.adapters.deployer import Deployer
from services.rules.adapters.managesieve import ManageSieve
from services.rules.adapters.stored_rules import RulesInUnit
from services.rules.application.handlers import (
    Deps,
    adopt_account,
    drop_rules,
    handle,
    record_deployment,
    redeploy,
)
from services.rules.settings import RulesSettings
from shared.contracts.account import AccountCreated, AccountDeleted
from shared.contracts.base import Reply
from shared.contracts.rules import (
    CLIENT_COMMANDS,
    SERVICE,
    AdoptAccount,
    DeployRules,
    DropRules,
    RecordDeployment,
    Redeploy,
)
from shared.messaging.broker import send_internal
from shared.messaging.commands import Handler
from shared.messaging.service import Resources, ServiceSpec, Sweep, Wiring
from shared.messaging.unit_of_work import AggregateReader, UnitOfWork

AGGREGATES = "rulesets"
RECONCILE_AT_START_S = 5.0


def compose(settings: RulesSettings, kit: Resources) -> Wiring:
    reader = AggregateReader(kit.database[AGGREGATES])
    deps = Deps(sessions=kit.sessions)
    sieve = ManageSieve(settings.dovecot_sieve_host, settings.dovecot_sieve_port, settings.dovecot_master_user,
                        settings.dovecot_master_password.get_secret_value())

    async def send(command: Any) -> None:
        await send_internal(kit.broker, SERVICE, command)

    def in_unit(handler: Callable[..., Awaitable[Reply]], *extra: Any) -> Handler:
        async def handle_in(command: Any, unit: UnitOfWork) -> Reply:
            return await handler(command, RulesInUnit(unit), *extra)
        return handle_in

    async def behind() -> list[Redeploy]:
        return [Redeploy(address=address) for address in await reader.keys_where({"pending": True})]

    handlers: dict[type, Handler] = {kind: in_unit(handle, deps) for kind in CLIENT_COMMANDS}
    handlers |= {AdoptAccount: in_unit(adopt_account), DropRules: in_unit(drop_rules),
                 RecordDeployment: in_unit(record_deployment), Redeploy: in_unit(redeploy)}
    return Wiring(
        handlers=handlers, aggregates=AGGREGATES,
        reactions={
            AccountCreated: lambda e: [AdoptAccount(address=e.address, plan=e.plan, generation=e.occurred_at)],
            AccountDeleted: lambda e: [DropRules(address=e.address, deleted_at=e.occurred_at)],
        },
        work={DeployRules: Deployer(peek=reader.peek, install=sieve.install, send=send)},
        sweeps=(Sweep(settings.reconcile_interval_s, behind, first_after_s=RECONCILE_AT_START_S),),
    )


SPEC = ServiceSpec(name=SERVICE, settings=RulesSettings,
                   commands=(*CLIENT_COMMANDS, AdoptAccount, DropRules, RecordDeployment, Redeploy), compose=compose)
