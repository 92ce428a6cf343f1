"""The copy job service for the kit: its spec and its one composition root."""

import asyncio
from collections.abc import Awaitable

from services.copyjob.adapters.copier import Copier
from services.copyjob.adapters.kept_sessions import KeptSessions
from services.copyjob.adapters.outside import BusPasswords, CheckedResolver, FernetVault
from services.copyjob.adapters.stored_jobs import JobsInUnit
from services.copyjob.application.handlers import (
    Deps,
    end_jobs_of_deleted,
    handle,
    know_account,
    record_plan,
    record_progress,
    record_step,
)
from services.copyjob.settings import CopyJobSettings
from shared.contracts.account import AccountCreated, AccountDeleted
from shared.contracts.copyjob import (
    CLIENT_COMMANDS,
    SERVICE,
    CopyFolder,
    EndJobsOfDeleted,
    KnowAccount,
    PlanCopy,
    RecordPlan,
    RecordProgress,
    RecordStep,
)
from shared.messaging.service import Resources, ServiceSpec, Wiring, over_units
from shared.messaging.unit_of_work import AggregateReader

AGGREGATES = "jobs"


def compose(settings: CopyJobSettings, kit: Resources) -> Wiring:
    vault = FernetVault(settings.copy_secret_key.get_secret_value())
    passwords = BusPasswords(settings.amqp_url.get_secret_value())
    deps = Deps(sessions=kit.sessions, resolver=CheckedResolver.allowing(settings.allowed_source_networks),
                passwords=passwords, vault=vault)
    copier = Copier(peek=AggregateReader(kit.database[AGGREGATES]).peek, send=kit.send, vault=vault, settings=settings,
                    sessions=(sessions := KeptSessions()))
    handlers = over_units(JobsInUnit, {**dict.fromkeys(CLIENT_COMMANDS, handle), RecordPlan: record_plan,
                                       RecordStep: record_step, RecordProgress: record_progress,
                                       KnowAccount: know_account, EndJobsOfDeleted: end_jobs_of_deleted}, deps=deps)
    return Wiring(
        handlers=handlers, aggregates=AGGREGATES,
        reactions={
            AccountCreated: lambda e: [KnowAccount(address=e.address, plan=e.plan, generation=e.occurred_at)],
            AccountDeleted: lambda e: [EndJobsOfDeleted(address=e.address, deleted_at=e.occurred_at)],
        },
        work={PlanCopy: copier.plan, CopyFolder: copier.copy_folder},
        on_close=lambda: _close_all(passwords.close(), sessions.close()),
    )


async def _close_all(*closing: Awaitable[None]) -> None:
    await asyncio.gather(*closing)


SPEC = ServiceSpec(name=SERVICE, settings=CopyJobSettings,
                   commands=(*CLIENT_COMMANDS, RecordPlan, RecordStep, RecordProgress, KnowAccount, EndJobsOfDeleted),
                   compose=compose)
