"""Retention handlers: a pass queued once per account per period (whichever instance's sweep
asks), its outcome recorded, and the last pass shown to admins. Nothing here talks IMAP."""

from dataclasses import asdict, replace

from services.copyjob.application.handlers import Deps
from services.copyjob.application.ports import Jobs
from services.copyjob.domain.retention import RetentionPass, applies
from shared.contracts.base import Accepted, Rejected, Reply, rejection
from shared.contracts.copyjob import DueRetention, GetRetention, RecordRetention, RetainMailbox


async def get_retention(command: GetRetention, jobs: Jobs, deps: Deps) -> Reply:
    if isinstance(actor := await deps.sessions.actor_on(command, "the retention passes"), Rejected):
        return actor
    if not actor.is_admin:
        return rejection(command, "forbidden", "retention passes are shown to admins")
    if (plan := jobs.plan()) is None:
        return rejection(command, "not_found", f"{command.subject_key()} has no mail account")
    state = jobs.retention()
    last = {**asdict(state.last), "as_of": state.last.as_of.isoformat(), "ran_at": state.last.ran_at.isoformat()} \
        if state.last else None
    return Accepted(command_id=command.message_id, result={"applies": applies(plan), "passes": state.passes,
                                                            "queued_period": state.queued_period, "last": last})


async def due_retention(command: DueRetention, jobs: Jobs, deps: Deps) -> Accepted:
    """Queue the pass once per period; never beside a running purge (a message moved to Archive
    while it runs would escape it): the next sweep asks again."""
    state, current = jobs.retention(), jobs.current()
    if applies(jobs.plan()) and state.queued_period != command.period and not (current and current.purging):
        jobs.save_retention(replace(state, queued_period=command.period), work=[
            RetainMailbox(address=command.address, period=command.period, as_of=command.as_of)])
    return Accepted(command_id=command.message_id)


async def record_retention(command: RecordRetention, jobs: Jobs, deps: Deps) -> Accepted:
    state = jobs.retention()
    if state.queued_period == command.period and (state.last is None or state.last.period != command.period):
        done = RetentionPass(period=command.period, as_of=command.as_of, ran_at=deps.clock(), archived=command.archived,
                             expunged=command.expunged)
        jobs.save_retention(replace(state, last=done, passes=state.passes + 1))
    return Accepted(command_id=command.message_id)


