"""The copy job service for the kit: its spec and its one composition root."""

from functools import partial

from services.copyjob.adapters.copier import Copier
from services.copyjob.adapters.kept_sessions import KeptSessions
from services.copyjob.adapters.outside import BusPasswords, CheckedResolver, FernetVault
from services.copyjob.adapters.purger import Purger
from services.copyjob.adapters.retainer import Retainer, retention_sweep
from services.copyjob.adapters.start_checks import StartChecks
from services.copyjob.adapters.stored_jobs import JobsInUnit
from services.copyjob.application.handlers import (
    Deps,
    end_jobs_of_deleted,
    handle,
    know_account,
    open_job,
    record_plan,
    record_progress,
    record_purge_plan,
    record_removed,
    record_step,
)
from services.copyjob.application.retention import due_retention, get_retention, record_retention
from services.copyjob.settings import CopyJobSettings
from shared.contracts.account import AccountCreated, AccountDeleted
from shared.contracts.copyjob import (
    CLIENT_COMMANDS,
    SERVICE,
    CheckStart,
    CopyFolder,
    DueRetention,
    EndJobsOfDeleted,
    GetRetention,
    KnowAccount,
    OpenJob,
    PlanCopy,
    PurgeStep,
    RecordPlan,
    RecordProgress,
    RecordPurgePlan,
    RecordRemoved,
    RecordRetention,
    RecordStep,
    RetainMailbox,
)
from shared.messaging.service import Resources, ServiceSpec, Sweep, Wiring, over_units
from shared.messaging.unit_of_work import AggregateReader

AGGREGATES = "jobs"


def compose(settings: CopyJobSettings, kit: Resources) -> Wiring:
    vault = FernetVault(settings.copy_secret_key.get_secret_value())
    passwords = BusPasswords(settings.amqp_url.get_secret_value())
    resolver = CheckedResolver.allowing(settings.allowed_source_networks)
    deps = Deps(sessions=kit.sessions, vault=vault, resolver=resolver)
    stored, sessions = AggregateReader(kit.database[AGGREGATES]), KeptSessions()
    peek = stored.peek
    checks = StartChecks(peek=peek, send=kit.send, vault=vault, passwords=passwords, resolver=resolver)
    copier = Copier(peek=peek, send=kit.send, vault=vault, settings=settings, sessions=sessions)
    purger = Purger(peek=peek, send=kit.send, settings=settings, sessions=sessions)
    retainer = Retainer(peek=peek, send=kit.send, settings=settings, sessions=sessions)
    handlers = over_units(JobsInUnit, {**dict.fromkeys(CLIENT_COMMANDS, handle), RecordPlan: record_plan,
                                       OpenJob: open_job, RecordStep: record_step, RecordProgress: record_progress,
                                       RecordPurgePlan: record_purge_plan, RecordRemoved: record_removed,
                                       GetRetention: get_retention, DueRetention: due_retention,
                                       RecordRetention: record_retention,
                                       KnowAccount: know_account, EndJobsOfDeleted: end_jobs_of_deleted}, deps=deps)
    return Wiring(
        handlers=handlers, aggregates=AGGREGATES,
        reactions={
            AccountCreated: lambda e: [KnowAccount(address=e.address, plan=e.plan, generation=e.occurred_at)],
            AccountDeleted: lambda e: [EndJobsOfDeleted(address=e.address, deleted_at=e.occurred_at)],
        },
        work={CheckStart: checks, PlanCopy: copier.plan, CopyFolder: copier.copy_folder, PurgeStep: purger, RetainMailbox: retainer},
        sweeps=(Sweep(settings.retention_sweep_s, retention_sweep(partial(stored.every, fields=("retention",)), settings)),),
        on_close=(passwords.close, sessions.close),
    )


SPEC = ServiceSpec(name=SERVICE, settings=CopyJobSettings,
                   commands=(*CLIENT_COMMANDS, OpenJob, RecordPlan, RecordStep, RecordProgress, RecordPurgePlan, RecordRemoved,
                             DueRetention, RecordRetention, KnowAccount, EndJobsOfDeleted),
                   compose=compose)
