"""Jobs as one document per account in the kit's unit of work, `_id` = address: the plan, the
current job (with the sealed source password and the checked addresses while it runs), the
last few finished jobs, and the folders' checkpoints (marks, by mark_key)."""

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from services.copyjob.domain.checkpoints import Mark
from services.copyjob.domain.jobs import RECENT_JOBS, FolderProgress, Job, PendingStart
from services.copyjob.domain.purge import PurgeFolder
from services.copyjob.domain.retention import RetentionPass, RetentionState
from shared.contracts.base import Event, Requester, WorkItem
from shared.messaging.unit_of_work import Doc, UnitOfWork


def job_doc(job: Job) -> dict[str, Any]:
    doc = asdict(job)
    doc["folders"] = [{**f, "too_big": list(f["too_big"]), "refused": list(f["refused"])} for f in doc["folders"]]
    return doc


def job_of(doc: dict[str, Any]) -> Job:
    folders = tuple(FolderProgress(**{**f, "too_big": tuple(f["too_big"]), "refused": tuple(f.get("refused", ()))})
                    for f in doc["folders"])
    purge = tuple(PurgeFolder(**f) for f in doc.get("purge") or ())
    removed = doc.get("removed_folders")
    return Job(**{**doc, "folders": folders, "purge": purge,
                  "removed_folders": tuple(removed) if removed is not None else None})


def running(doc: Doc | None, job_id: str) -> Job | None:
    """For a worker: the job if it is the account's running one."""
    current = (doc or {}).get("current")
    if not current or current["id"] != job_id or current["state"] != "running":
        return None
    return job_of(current)


def running_job(doc: Doc | None, job_id: str) -> tuple[Job, str, list[str]] | None:
    """For a copy worker: the running job, its sealed secret and checked addresses."""
    if (job := running(doc, job_id)) is None or not doc or not doc.get("secret"):
        return None
    return job, doc["secret"], list(doc.get("addresses", []))


def marks_of(doc: Doc | None) -> dict[str, Mark]:
    return {key: Mark(**mark) for key, mark in ((doc or {}).get("marks") or {}).items()}


class JobsInUnit:
    def __init__(self, unit: UnitOfWork) -> None:
        self._unit = unit

    @property
    def _doc(self) -> Doc:
        return self._unit.state or {}

    def plan(self) -> str | None:
        plan: str | None = self._doc.get("plan")
        return plan

    def generation(self) -> datetime | None:
        generation: datetime | None = self._doc.get("generation")
        return generation

    def current(self) -> Job | None:
        current = self._doc.get("current")
        return job_of(current) if current else None

    def find(self, job_id: str) -> Job | None:
        for doc in [self._doc.get("current"), *self._doc.get("recent", [])]:
            if doc and doc["id"] == job_id:
                return job_of(doc)
        return None

    def starting(self) -> PendingStart | None:
        pending = self._doc.get("starting")
        return PendingStart(**pending) if pending else None

    def save_starting(self, pending: PendingStart | None, *, work: Sequence[WorkItem] = ()) -> None:
        self._unit.stage({"starting": asdict(pending) if pending else None}, work=work)

    def requester(self) -> Requester | None:
        return self._unit.requester

    def started_by(self, command_id: str) -> Job | None:
        for doc in [self._doc.get("current"), *self._doc.get("recent", [])]:
            if doc and doc.get("started_by") == command_id:
                return job_of(doc)
        return None

    def retention(self) -> RetentionState:
        stored = self._doc.get("retention") or {}
        last = stored.get("last")
        return RetentionState(queued_period=stored.get("queued_period"), passes=stored.get("passes", 0),
                              last=RetentionPass(**last) if last else None)

    def save_retention(self, state: RetentionState, *, work: Sequence[WorkItem] = ()) -> None:
        self._unit.stage({"retention": asdict(state)}, work=work)

    def adopt(self, plan: str, generation: datetime) -> None:
        self._unit.stage({"plan": plan, "generation": generation, "current": None, "recent": [], "secret": None,
                          "addresses": [], "marks": {}, "retention": {}, "starting": None})

    def forget(self) -> None:
        self._unit.stage({"plan": None, "secret": None, "addresses": [], "marks": {}, "retention": {}, "starting": None})

    def save(self, job: Job, *, secret: str | None = None, addresses: Sequence[str] = (),
             events: Sequence[Event] = (), work: Sequence[WorkItem] = (), marks: dict[str, Mark] | None = None) -> None:
        fields: dict[str, Any] = {"current": job_doc(job)}
        if marks:
            fields["marks"] = {**(self._doc.get("marks") or {}), **{key: asdict(m) for key, m in marks.items()}}
        previous = self._doc.get("current")
        if previous and previous["id"] != job.id:
            fields["recent"] = [previous, *self._doc.get("recent", [])][:RECENT_JOBS]
        if secret is not None:
            fields |= {"secret": secret, "addresses": list(addresses)}
        if not job.running:
            fields |= {"secret": None, "addresses": []}
        self._unit.stage(fields, events=events, work=work)
