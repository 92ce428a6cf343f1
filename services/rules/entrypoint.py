"""The rules service for the kit: its spec and its one composition root."""

from functools import partial
from pathlib import Path

from services.rules.adapters.deployer import Deployer, Pruner
from services.rules.adapters.managesieve import ManageSieve
from services.rules.adapters.outbound_meter import OutboundMeters
from services.rules.adapters.postfix_map import ForwardMap
from services.rules.adapters.stored_rules import RulesInUnit
from services.rules.application.handlers import (
    Deps,
    adopt_account,
    drop_rules,
    handle,
    record_deployment,
    redeploy,
)
from services.rules.domain.sieve import Outside
from services.rules.settings import RulesSettings
from shared.contracts.account import AccountCreated, AccountDeleted
from shared.contracts.rules import (
    CLIENT_COMMANDS,
    SERVICE,
    AdoptAccount,
    DeployRules,
    DropRules,
    PruneForwards,
    RecordDeployment,
    Redeploy,
)
from shared.messaging.service import Resources, ServiceSpec, Sweep, Wiring, over_units
from shared.messaging.unit_of_work import AggregateReader

AGGREGATES = "rulesets"
RECONCILE_AT_START_S = 5.0


def compose(settings: RulesSettings, kit: Resources) -> Wiring:
    reader = AggregateReader(kit.database[AGGREGATES])
    deps = Deps(sessions=kit.sessions, internal_domains=frozenset({settings.forward_domain, settings.srs_domain}),
                outbound=OutboundMeters(Path(settings.outbound_meter_dir), settings.outbound_per_hour))
    sieve = ManageSieve(settings.dovecot_sieve_socket, settings.dovecot_master_user,
                        settings.dovecot_master_password.get_secret_value(),
                        keep=settings.sieve_connections_kept, idle_s=settings.sieve_connection_idle_s)

    forward_map = ForwardMap(settings.postfix_forward_map, settings.postfix_config_dir, settings.forward_domain)

    async def behind() -> list[Redeploy]:
        return [Redeploy(address=address) for address in await reader.keys_where({"pending": True})]

    handlers = over_units(RulesInUnit, {**dict.fromkeys(CLIENT_COMMANDS, partial(handle, deps=deps)),
                                        AdoptAccount: adopt_account, DropRules: drop_rules,
                                        RecordDeployment: record_deployment, Redeploy: redeploy})
    return Wiring(
        handlers=handlers, aggregates=AGGREGATES,
        reactions={
            AccountCreated: lambda e: [AdoptAccount(address=e.address, plan=e.plan, generation=e.occurred_at)],
            AccountDeleted: lambda e: [DropRules(address=e.address, deleted_at=e.occurred_at)],
        },
        work={DeployRules: Deployer(peek=reader.peek, forward_map=forward_map, install=sieve.install, send=kit.send,
                                    outside=Outside(settings.forward_domain, settings.outbound_per_hour)),
              PruneForwards: Pruner(forward_map)},
        sweeps=(Sweep(settings.reconcile_interval_s, behind, first_after_s=RECONCILE_AT_START_S),),
        on_close=(sieve.close,),
    )


SPEC = ServiceSpec(name=SERVICE, settings=RulesSettings,
                   commands=(*CLIENT_COMMANDS, AdoptAccount, DropRules, RecordDeployment, Redeploy), compose=compose)
