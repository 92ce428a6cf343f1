"""Commands and events owned by the copy job service (mail copy from another IMAP server; purge
and retention come in part 2). The notifier consumes the job events."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.account import AddressText, PasswordText, PlanName
from shared.contracts.base import Command, Event, InternalCommand, WorkItem

SERVICE = "copyjob"

JobKind = Literal["copy"]
JobState = Literal["running", "completed", "failed", "cancelled"]
FailureReason = Literal["source_login_refused", "source_unreachable", "source_tls_failed", "source_protocol",
                        "quota_exceeded", "account_deleted", "internal"]
"""why a job failed, as a category: never the server's words (they may echo what the user typed)"""
HostText = Annotated[str, Field(min_length=1, max_length=255)]
JobId = Annotated[str, Field(min_length=1, max_length=64)]


class JobCommand(Command):
    KEY_FIELD = "address"
    address: AddressText


class StartCopy(JobCommand):
    """By the user, for their own address only: copy every folder of `address` on the source server
    into this mailbox. The current password is re-checked by the account service first."""

    type: Literal["StartCopy"] = "StartCopy"
    current_password: PasswordText
    source_host: HostText
    source_port: Annotated[int, Field(ge=1, le=65535)] = 993
    source_security: Literal["imaps", "starttls", "plain"] = "imaps"
    source_password: PasswordText
    notification_address: AddressText


class CancelJob(JobCommand):
    type: Literal["CancelJob"] = "CancelJob"
    job_id: JobId


class GetJob(JobCommand):
    """The account's current (or last) job; `job_id` picks one of its recent jobs."""

    type: Literal["GetJob"] = "GetJob"
    job_id: JobId | None = None


class PlannedFolder(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    """ours (Unicode)"""
    source_name: str
    """the source's (modified UTF-7, as it spells it)"""
    up_to_date: int | None = None
    """the source's message count when nothing there is new since the last copy (no step)"""


class FolderMark(BaseModel):
    """A checkpoint: how far a source folder is copied here (services/copyjob/domain/checkpoints.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    source_uidvalidity: int
    source_uidnext: int
    source_after: int
    target_uidvalidity: int
    target_uidnext: int
    target_messages: int


class RecordPlan(InternalCommand):
    """Internal, from the planning step: the folders to copy, one step each (in this order)."""

    KEY_FIELD = "address"
    type: Literal["RecordPlan"] = "RecordPlan"
    address: AddressText
    job_id: JobId
    folders: list[PlannedFolder]


class RecordStep(InternalCommand):
    """Internal, from a copy step: a chunk of a folder done, with its checkpoint (or the job failed)."""

    KEY_FIELD = "address"
    type: Literal["RecordStep"] = "RecordStep"
    address: AddressText
    job_id: JobId
    folder: str = ""
    source_folder: str = ""
    chunk: int = 0
    more: bool = False
    """the folder has more to copy: the next chunk's step follows"""
    mark: FolderMark | None = None
    copied: int = 0
    already_there: int = 0
    copied_bytes: int = 0
    too_big: list[str] = Field(default_factory=list)
    """folder#UID (size) of messages over the size limit, skipped"""
    failure: FailureReason | None = None


class RecordProgress(InternalCommand):
    """Internal, from a copy step every few seconds: how far its folder is."""

    KEY_FIELD = "address"
    type: Literal["RecordProgress"] = "RecordProgress"
    address: AddressText
    job_id: JobId
    folder: str
    source_folder: str
    copied: int
    total: int
    """messages the step found missing here, to copy"""


class KnowAccount(InternalCommand):
    """Internal, from AccountCreated: the account's plan (mail copy is for business-standard and kwc)."""

    KEY_FIELD = "address"
    type: Literal["KnowAccount"] = "KnowAccount"
    address: AddressText
    plan: PlanName
    generation: datetime


class EndJobsOfDeleted(InternalCommand):
    """Internal, from AccountDeleted: the running job of that address is cancelled, its secret goes."""

    KEY_FIELD = "address"
    type: Literal["EndJobsOfDeleted"] = "EndJobsOfDeleted"
    address: AddressText
    deleted_at: datetime


class PlanCopy(WorkItem):
    """List the source's folders, make them here (and the subscriptions), and record the plan."""

    QUEUE = "plan"
    type: Literal["PlanCopy"] = "PlanCopy"
    address: AddressText
    job_id: JobId


class CopyFolder(WorkItem):
    """Copy the next chunk of what this folder here lacks from its source folder."""

    QUEUE = "copy"
    type: Literal["CopyFolder"] = "CopyFolder"
    address: AddressText
    job_id: JobId
    folder: str
    source_folder: str
    chunk: int = 0


class JobEvent(Event):
    job_id: str
    kind: JobKind = "copy"
    address: str
    notification_address: str


class JobStarted(JobEvent):
    ROUTING_KEY = "copyjob.job.started"
    type: Literal["JobStarted"] = "JobStarted"


class JobProgress(JobEvent):
    """At most one per copy step every few seconds."""

    ROUTING_KEY = "copyjob.job.progress"
    type: Literal["JobProgress"] = "JobProgress"
    folder: str
    folder_copied: int
    folder_total: int
    copied: int


class JobCompleted(JobEvent):
    ROUTING_KEY = "copyjob.job.completed"
    type: Literal["JobCompleted"] = "JobCompleted"
    copied: int
    already_there: int
    copied_bytes: int
    skipped_too_big: int


class JobFailed(JobEvent):
    ROUTING_KEY = "copyjob.job.failed"
    type: Literal["JobFailed"] = "JobFailed"
    reason: FailureReason
    copied: int


class JobCancelled(JobEvent):
    ROUTING_KEY = "copyjob.job.cancelled"
    type: Literal["JobCancelled"] = "JobCancelled"
    copied: int


CLIENT_COMMANDS = (StartCopy, CancelJob, GetJob)
