"""Commands and events owned by the copy job service (mail copy from another IMAP server; purge
and retention come in part 2). The notifier consumes the job events."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

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


class RecordPlan(InternalCommand):
    """Internal, from the planning step: the folders to copy, one step each."""

    KEY_FIELD = "address"
    type: Literal["RecordPlan"] = "RecordPlan"
    address: AddressText
    job_id: JobId
    folders: list[str]
    """our names (Unicode), in the order the steps go"""
    source_folders: list[str]
    """the source's names, index for index"""


class RecordStep(InternalCommand):
    """Internal, from a copy step: a folder done (or the job failed there)."""

    KEY_FIELD = "address"
    type: Literal["RecordStep"] = "RecordStep"
    address: AddressText
    job_id: JobId
    folder: str
    copied: int = 0
    already_there: int = 0
    copied_bytes: int = 0
    too_big: list[str] = Field(default_factory=list)
    """Message-IDs (or source UIDs) of messages over the size limit, skipped"""
    failure: FailureReason | None = None


class RecordProgress(InternalCommand):
    """Internal, from a copy step every few seconds: how far its folder is."""

    KEY_FIELD = "address"
    type: Literal["RecordProgress"] = "RecordProgress"
    address: AddressText
    job_id: JobId
    folder: str
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
    """Copy what this folder here lacks from its source folder."""

    QUEUE = "copy"
    type: Literal["CopyFolder"] = "CopyFolder"
    address: AddressText
    job_id: JobId
    folder: str
    source_folder: str


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
