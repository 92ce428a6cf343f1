"""Copy job command handlers: authorize, check the source and the user's own password, start a
copy or a purge (its planning step goes to the work queue), and bring the workers' outcomes into
the account's turn. Nothing here talks IMAP."""

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from services.copyjob.application.ports import Jobs, Resolver, Vault
from services.copyjob.domain.checkpoints import Mark, mark_key
from services.copyjob.domain.folders import decode_mutf7_or_raw
from services.copyjob.domain.jobs import (
    Job,
    PendingStart,
    Planned,
    StepResult,
    cancelled,
    failed,
    removing_folders,
    with_folder_skipped,
    with_folders_removed,
    with_plan,
    with_progress,
    with_purge_plan,
    with_step,
)
from services.copyjob.domain.purge import PurgeFolder
from services.copyjob.domain.source_host import HostRefused, parse_host
from shared.auth import Actor
from shared.contracts.base import Accepted, Deferred, Rejected, Reply, rejection
from shared.contracts.copyjob import (
    CancelJob,
    CheckStart,
    CopyFolder,
    CopyjobFieldError,
    CopyjobRejected,
    EndJobsOfDeleted,
    GetJob,
    JobCancelled,
    JobCommand,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobStarted,
    KnowAccount,
    OpenJob,
    PlanCopy,
    PurgeMailbox,
    PurgeStep,
    RecordPlan,
    RecordProgress,
    RecordPurgePlan,
    RecordRemoved,
    RecordStep,
    StartCopy,
)
from shared.generations import of_earlier_generation
from shared.mail_addresses import LIMITS, address_problem, normalized
from shared.plans import Capability, Plan, allows
from shared.sessions import SessionGuard


def host_error(refusal: HostRefused) -> CopyjobFieldError:
    return CopyjobFieldError(field="source_host", code=refusal.code, message=str(refusal), params=refusal.params)


@dataclass(frozen=True)
class Deps:
    sessions: SessionGuard
    vault: Vault
    resolver: Resolver
    """only for a source given as an address (no DNS): a name is resolved by CheckStart"""
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


async def handle(command: JobCommand, jobs: Jobs, deps: Deps) -> Reply | Deferred:
    if isinstance(actor := await deps.sessions.actor_of(command), Rejected):
        return actor
    address = command.subject_key()
    if isinstance(command, StartCopy):
        return await _start(command, actor, address, jobs, deps)
    if not actor.may_act_on(address):
        return rejection(command, "forbidden", f"{actor.subject} may not see or change the jobs of {address}")
    if isinstance(command, PurgeMailbox):
        return _start_purge(command, address, jobs, deps)
    job_id = command.job_id if isinstance(command, CancelJob | GetJob) else None
    job = jobs.find(job_id) if job_id else jobs.current()
    if job is None:
        return rejection(command, "not_found", f"{address} has no such job")
    if isinstance(command, CancelJob) and job.running and job.kind == "purge":
        return CopyjobRejected(command_id=command.message_id, code="not_cancellable",
                               message="a purge runs to its end: a mailbox is never left half purged")
    if isinstance(command, CancelJob) and job.running:
        job = cancelled(job, deps.clock())
        jobs.save(job, events=[JobCancelled(**_about(job, address), copied=job.copied)])
    return Accepted(command_id=command.message_id, result=view(job))


async def _start(command: StartCopy, actor: Actor, address: str, jobs: Jobs, deps: Deps) -> Reply | Deferred:
    """What the account's turn can tell at once; the user's password and the source's addresses are
    checked out of it (CheckStart: a stalled DNS or account service holds no other account's
    command), and OpenJob answers."""
    if actor.is_admin or actor.subject != address:
        return rejection(command, "forbidden", "only the account's own user may start a copy into it")
    if (pending := jobs.starting()) and pending.command_id == str(command.message_id):
        return Deferred()  # delivered again: its checks run already
    if started := jobs.started_by(str(command.message_id)):  # delivered again after its answer: the same one
        return Accepted(command_id=command.message_id, result={"job_id": started.id, "state": started.state})
    if refused := _refused_start(command, address, jobs, Capability.MAIL_COPY, "mail copy", deps.clock()):
        return refused
    errors = []
    if problem := address_problem(command.notification_address):  # one address: a list would mail each
        errors.append(CopyjobFieldError(field="notification_address", code="not_one_address",
                                        message=f"the notification address {problem}", params=dict(LIMITS)))
    try:
        source = parse_host(command.source_host)
        if source.literal is not None:  # an address as typed: judged here, no DNS (a name is, out of the turn)
            await deps.resolver.addresses(source)
    except HostRefused as refusal:
        errors.append(host_error(refusal))
    if errors:
        return rejection(command, "validation_failed", "; ".join(e.message for e in errors), *errors)
    pending = PendingStart(job_id=uuid.uuid4().hex, command_id=str(command.message_id), asked_at=deps.clock(),
                           source_host=source.host, source_port=command.source_port,
                           source_security=command.source_security,
                           notification_address=normalized(command.notification_address),
                           secret=deps.vault.seal(command.source_password.get_secret_value()))
    sealed = deps.vault.seal(json.dumps({"token": command.actor_token, "password": command.current_password.get_secret_value()}))
    jobs.save_starting(pending, work=[CheckStart(address=address, job_id=pending.job_id, sealed=sealed,
                                                 source_host=command.source_host, requester=jobs.requester())])
    return Deferred()


async def open_job(command: OpenJob, jobs: Jobs, deps: Deps) -> Reply:
    """The checks' outcome, as the StartCopy's answer: the job starts, or the start is refused."""
    answering = command.answers.command_id if command.answers else command.message_id
    pending = jobs.starting()
    if pending is None or pending.job_id != command.job_id or not pending.holds(deps.clock()):
        return CopyjobRejected(command_id=answering, code="conflict", message="this start waited too long; start the copy again")
    if (current := jobs.current()) and current.running:  # cannot be while the start holds the place; never pushed aside
        jobs.save_starting(None)
        return CopyjobRejected(command_id=answering, code="already_running", message=f"job {current.id} is still running")
    if command.refusal:
        jobs.save_starting(None)
        return command.refusal.model_copy(update={"command_id": answering})
    job = pending.job(deps.clock())
    jobs.save_starting(None)
    jobs.save(job, secret=pending.secret, addresses=command.addresses, events=[JobStarted(**_about(job, command.address))],
              work=[PlanCopy(address=command.address, job_id=job.id)])
    return Accepted(command_id=answering, result={"job_id": job.id, "state": job.state})


def _refused_start(command: StartCopy | PurgeMailbox, address: str, jobs: Jobs, needs: Capability,
                   what: str, now: datetime) -> Rejected | None:
    """What refuses a new job of any kind: no account, a plan without it, a job still running or
    about to (a copy's start being checked)."""
    if (plan := jobs.plan()) is None:
        return rejection(command, "not_found", f"{address} has no mail account")
    if not allows(Plan(plan), needs):
        return rejection(command, "not_allowed_on_plan", f"{what} is not available on the {plan} plan")
    if (current := jobs.current()) and current.running:
        return CopyjobRejected(command_id=command.message_id, code="already_running",
                               message=f"job {current.id} is still running for {address}")
    if (pending := jobs.starting()) and pending.holds(now):
        return CopyjobRejected(command_id=command.message_id, code="already_running",
                               message=f"a copy is starting for {address}")
    return None


def _start_purge(command: PurgeMailbox, address: str, jobs: Jobs, deps: Deps) -> Reply:
    if refused := _refused_start(command, address, jobs, Capability.MAIL_PURGE, "purge", deps.clock()):
        return refused
    job = Job(id=uuid.uuid4().hex, started_at=deps.clock(), kind="purge", notification_address=address)
    jobs.save(job, events=[JobStarted(**_about(job, address))], work=[PurgeStep(address=address, job_id=job.id, step="plan")])
    return Accepted(command_id=command.message_id, result={"job_id": job.id, "state": job.state})


def _about(job: Job, address: str) -> dict[str, Any]:
    return {"job_id": job.id, "kind": job.kind, "address": address, "notification_address": job.notification_address}


async def record_plan(command: RecordPlan, jobs: Jobs, deps: Deps) -> Accepted:
    job = jobs.find(command.job_id)
    if job and job.running and not job.planned:
        planned = with_plan(job, [Planned(f.name, f.source_name, f.up_to_date, f.renamed, f.skipped)
                                  for f in command.folders], deps.clock())
        steps = [CopyFolder(address=command.address, job_id=job.id, folder=f.name, source_folder=f.source_name)
                 for f in command.folders if f.up_to_date is None and f.skipped is None]
        jobs.save(planned, events=_ended(planned, command.address), work=steps)
    return Accepted(command_id=command.message_id)


async def record_step(command: RecordStep, jobs: Jobs, deps: Deps) -> Accepted:
    job = jobs.find(command.job_id)
    if job is None or not job.running:
        return Accepted(command_id=command.message_id)
    if command.failure:
        changed = failed(job, command.failure, deps.clock(), command.limit)
        jobs.save(changed, events=_ended(changed, command.address))
        return Accepted(command_id=command.message_id)
    if command.skipped:
        changed = with_folder_skipped(job, command.source_folder, command.chunk, command.skipped, deps.clock())
        jobs.save(changed, events=_ended(changed, command.address))
        return Accepted(command_id=command.message_id)
    result = StepResult(copied=command.copied, already_there=command.already_there, copied_bytes=command.copied_bytes,
                        too_big=tuple(command.too_big), refused=tuple(command.refused), flags_dropped=command.flags_dropped)
    changed = with_step(job, command.source_folder, command.chunk, result, deps.clock(), more=command.more)
    if changed == job:
        return Accepted(command_id=command.message_id)  # that chunk was recorded before
    after = [CopyFolder(address=command.address, job_id=job.id, folder=command.folder, source_folder=command.source_folder,
                        chunk=command.chunk + 1)] if command.more else []
    marks = {mark_key(job.source_host, job.source_port, command.source_folder, command.folder):
             Mark(**command.mark.model_dump())} if command.mark else None
    jobs.save(changed, events=_ended(changed, command.address), work=[*after, *_removal(changed, command.address)],
              marks=marks)
    return Accepted(command_id=command.message_id)


async def record_purge_plan(command: RecordPurgePlan, jobs: Jobs, deps: Deps) -> Accepted:
    job = jobs.find(command.job_id)
    if job and job.running and not job.planned:
        plan = [PurgeFolder(**f.model_dump()) for f in command.folders]
        planned = with_purge_plan(job, plan, deps.clock())
        steps = [PurgeStep(address=command.address, job_id=job.id, step="empty", folder=f.source_name)
                 for f in planned.folders if f.state == "pending"]
        jobs.save(planned, events=_ended(planned, command.address), work=steps + _removal(planned, command.address))
    return Accepted(command_id=command.message_id)


async def record_removed(command: RecordRemoved, jobs: Jobs, deps: Deps) -> Accepted:
    job = jobs.find(command.job_id)
    if job and removing_folders(job):
        done = with_folders_removed(job, command.removed, deps.clock())
        jobs.save(done, events=_ended(done, command.address))
    return Accepted(command_id=command.message_id)


def _removal(job: Job, address: str) -> list[PurgeStep]:
    """The purge's last step, once its every folder is empty (staged with the record that made it so)."""
    return [PurgeStep(address=address, job_id=job.id, step="remove")] if removing_folders(job) else []


async def record_progress(command: RecordProgress, jobs: Jobs, deps: Deps) -> Accepted:
    job = jobs.find(command.job_id)
    if job and job.running:
        changed = with_progress(job, command.source_folder, command.copied, command.total)
        if changed != job:
            jobs.save(changed, events=[JobProgress(**_about(changed, command.address), folder=command.folder,
                                                   folder_copied=command.copied, folder_total=command.total,
                                                   copied=changed.copied)])
    return Accepted(command_id=command.message_id)


def _ended(job: Job, address: str) -> list[Any]:
    if job.state == "completed":
        return [JobCompleted(**_about(job, address), **job.totals(), skipped_folders=job.skipped_folders())]
    if job.state == "failed":
        return [JobFailed(**_about(job, address), reason=job.reason, copied=job.copied, limit=job.limit)]
    return []


async def know_account(command: KnowAccount, jobs: Jobs, deps: Deps) -> Accepted:
    known = jobs.generation()
    if known is None or known < command.generation:
        jobs.adopt(command.plan, command.generation)
    return Accepted(command_id=command.message_id)


async def end_jobs_of_deleted(command: EndJobsOfDeleted, jobs: Jobs, deps: Deps) -> Accepted:
    if of_earlier_generation(command.deleted_at, jobs.generation()):
        return Accepted(command_id=command.message_id)
    if (job := jobs.current()) and job.running:
        ended = cancelled(job, deps.clock(), reason="account_deleted")
        jobs.save(ended, events=[JobCancelled(**_about(ended, command.address), copied=ended.copied)])
    jobs.forget()
    return Accepted(command_id=command.message_id)


def view(job: Job) -> dict[str, Any]:
    shown = asdict(job)
    shown["folders"] = [{**{k: v for k, v in f.items() if k not in ("source_name", "progress", "chunks")},
                         "copied": max(f["copied"], f["progress"]),
                         **({"source": decode_mutf7_or_raw(f["source_name"])} if f["renamed"] or f["skipped"] else {})}
                        for f in shown["folders"]]
    return {**shown, "totals": job.totals(), "started_at": job.started_at.isoformat(),
            "ended_at": job.ended_at.isoformat() if job.ended_at else None}
