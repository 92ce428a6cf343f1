"""A StartCopy in the account's turn: only what can be told at once; the user's password and the
source's addresses are checked out of the turn (CheckStart), and OpenJob answers the client."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet

from services.copyjob.adapters.outside import FernetVault
from services.copyjob.adapters.stored_jobs import JobsInUnit
from services.copyjob.application.handlers import Deps, _start, open_job
from services.copyjob.domain.source_host import Address, Source
from shared.auth import Actor
from shared.contracts.base import Accepted, Deferred, Rejected, Requester
from shared.contracts.copyjob import CheckStart, OpenJob, PlanCopy, StartCopy
from shared.messaging.unit_of_work import UnitOfWork

NOW = datetime(2026, 12, 2, tzinfo=UTC)
ADDRESS = "taro@example.jp"
VAULT = FernetVault(Fernet.generate_key().decode())
ACTOR = Actor(subject=ADDRESS, role="user", domains=frozenset(), expires_at=NOW + timedelta(hours=1), issued_at=NOW)


class _NoDns:
    """A resolver the turn must never wait on for a name."""

    async def addresses(self, source: Source) -> list[Address]:
        assert source.literal is not None, "DNS in the account's turn"
        return [source.literal]


def _deps(now: datetime = NOW) -> Deps:
    return Deps(sessions=None, vault=VAULT, resolver=_NoDns(), clock=lambda: now)  # type: ignore[arg-type]


def _unit(doc: dict | None, requester: Requester | None = None) -> UnitOfWork:
    unit = UnitOfWork(ADDRESS, doc, service="copyjob")
    unit.requester = requester
    return unit


def _command(**changes) -> StartCopy:
    return StartCopy(**{"actor_token": "token", "address": ADDRESS, "current_password": "mine", "source_host": "imap.example.com",
                        "source_port": 993, "source_password": "theirs", "notification_address": "me@example.net", **changes})


def _asked(unit: UnitOfWork, command: StartCopy, now: datetime = NOW):
    return asyncio.run(_start(command, ACTOR, ADDRESS, JobsInUnit(unit), _deps(now)))


def test_a_start_is_checked_out_of_the_turn_and_holds_the_accounts_one_place():
    requester = Requester(reply_to="amq.rabbitmq.reply-to.x", correlation_id="c", command_id=uuid.uuid4())
    unit, command = _unit({"plan": "kwc"}, requester), _command()

    assert isinstance(_asked(unit, command), Deferred)
    [check] = unit.work
    assert isinstance(check, CheckStart) and check.requester == requester and check.source_host == "imap.example.com"
    assert "mine" not in check.model_dump_json() and '"token"' not in check.model_dump_json()
    assert VAULT.open(check.sealed) == '{"token": "token", "password": "mine"}'
    stored = {"plan": "kwc", **unit.fields}
    again = _unit(stored)
    assert isinstance(_asked(again, command), Deferred) and not again.work  # delivered again: nothing new
    other = _asked(_unit(stored), _command())
    assert isinstance(other, Rejected) and other.code == "already_running"
    later = _asked(_unit(stored), _command(), NOW + timedelta(minutes=3))  # its checks never answered
    assert isinstance(later, Deferred)


def test_the_checks_outcome_answers_the_start():
    unit, start = _unit({"plan": "kwc"}), _command()
    _asked(unit, start)
    [check] = unit.work
    stored = {"plan": "kwc", **unit.fields}
    asked = Requester(reply_to="amq.rabbitmq.reply-to.x", correlation_id="c", command_id=uuid.uuid4())

    refused_unit = _unit(stored)
    refusal = Rejected(code="invalid_credentials", message="wrong password")
    refused = asyncio.run(open_job(OpenJob(address=ADDRESS, job_id=check.job_id, refusal=refusal, answers=asked),
                                   JobsInUnit(refused_unit), _deps()))
    assert isinstance(refused, Rejected) and (refused.code, refused.command_id) == ("invalid_credentials", asked.command_id)
    assert refused_unit.fields["starting"] is None and not refused_unit.work

    opened_unit = _unit(stored)
    opened = asyncio.run(open_job(OpenJob(address=ADDRESS, job_id=check.job_id, addresses=["192.0.2.7"], answers=asked),
                                  JobsInUnit(opened_unit), _deps()))
    assert isinstance(opened, Accepted) and opened.result == {"job_id": check.job_id, "state": "running"}
    assert opened.command_id == asked.command_id
    assert opened_unit.fields["addresses"] == ["192.0.2.7"] and VAULT.open(opened_unit.fields["secret"]) == "theirs"
    assert [type(w) for w in opened_unit.work] == [PlanCopy]

    again_unit = _unit({**stored, **opened_unit.fields})
    again = _asked(again_unit, start)  # the StartCopy delivered again after its answer: the same job, nothing new
    assert isinstance(again, Accepted) and again.result == opened.result
    assert not again_unit.work and not again_unit.fields
    purging = {**stored, "current": {**opened_unit.fields["current"], "id": "purge-1", "kind": "purge"}}
    late_unit = _unit(purging)  # a purge began meanwhile (it could only once the start had expired)
    late = asyncio.run(open_job(OpenJob(address=ADDRESS, job_id=check.job_id, answers=asked), JobsInUnit(late_unit), _deps()))
    assert isinstance(late, Rejected) and late.code == "already_running"
    assert "current" not in late_unit.fields and not late_unit.work  # the purge is never pushed aside
    stale = asyncio.run(open_job(OpenJob(address=ADDRESS, job_id="another", answers=asked), JobsInUnit(_unit(stored)), _deps()))
    assert isinstance(stale, Rejected) and stale.code == "conflict"


def test_an_address_as_typed_is_judged_in_the_turn_with_every_other_broken_rule():
    refused = _asked(_unit({"plan": "kwc"}), _command(source_host="10.0.0.1", notification_address="a@x, b@y"))
    assert isinstance(refused, Rejected) and refused.code == "validation_failed"
