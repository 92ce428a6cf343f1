"""Commands and events owned by the copy job service: mail copy from another IMAP server, mailbox
purge, and retention. The notifier consumes the job events."""

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.account import AddressText, PasswordText, PlanName
from shared.contracts.base import (
    Command,
    Event,
    FieldError,
    InternalCommand,
    Params,
    RejectCode,
    Rejected,
    Requester,
    WorkItem,
)

SERVICE = "copyjob"

CopyjobRejectCode = Literal[RejectCode, "already_running", "not_cancellable", "conflict", "invalid_credentials", "locked"]
"""Every code the copy job service answers: the shared ones, its own, and the account service's
answers to the user's password (a start re-checks it there: `invalid_credentials`, `locked`)."""

CopyjobFieldCode = Literal[
    "not_one_address",
    "host_length", "not_a_host_name", "malformed_ip_address", "not_public", "not_resolving", "no_address",
]
"""Every field code the copy job service's rules answer (the kit's shared ones aside): the
notification address, and the source host (each a reason it may not be connected to)."""

REJECT_CODES: tuple[CopyjobRejectCode, ...] = get_args(CopyjobRejectCode)
FIELD_CODES: tuple[CopyjobFieldCode, ...] = get_args(CopyjobFieldCode)
FIELD_PARAMS: Mapping[CopyjobFieldCode, tuple[str, ...]] = {
    "not_one_address": ("min_length", "max_length", "max_local_length"),
    "host_length": ("min_length", "max_length"),
    "not_a_host_name": (),
    "malformed_ip_address": (),
    "not_public": ("address",),
    "not_resolving": ("host",),
    "no_address": (),
}
"""the params each field code carries: `address` the IP address refused (a name's, or the one typed),
`host` the name that did not resolve"""


class CopyjobFieldError(FieldError):
    code: CopyjobFieldCode

    if TYPE_CHECKING:  # the code is checked where it is built (pydantic's mypy plugin leaves __init__ untyped)
        def __init__(self, *, field: str, code: CopyjobFieldCode, message: str, params: Params = ...) -> None: ...


class CopyjobRejected(Rejected):
    code: CopyjobRejectCode

    if TYPE_CHECKING:
        def __init__(self, *, command_id: UUID | None = None, code: CopyjobRejectCode, message: str,
                     errors: tuple[FieldError, ...] = ()) -> None: ...

JobKind = Literal["copy", "purge"]
JobState = Literal["running", "completed", "failed", "cancelled"]
FailureReason = Literal["source_login_refused", "source_unreachable", "source_tls_failed", "source_protocol",
                        "source_stalled", "too_many_folders", "byte_limit", "quota_exceeded", "account_deleted",
                        "internal"]
"""why a job failed, as a category: never the server's words (they may echo what the user typed)"""
FolderSkip = Literal["refused_here", "refused_at_source"]
"""why a folder was left out while the others were copied: our server refused its name or its mail,
or the source refused to open it"""
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


class PurgeMailbox(JobCommand):
    """By the user for their own address, or an admin of its domain: remove every message that is
    in the mailbox now, and the user's own folders; INBOX, the special-use folders, the account and
    its settings stay, and so does mail that arrives while it runs. Irreversible."""

    type: Literal["PurgeMailbox"] = "PurgeMailbox"


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
    renamed: bool = False
    """its own name has no valid form here: `name` is a safe one, the same on every run"""
    skipped: FolderSkip | None = None


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
    refused: list[str] = Field(default_factory=list)
    """folder#UID (why) of messages our mail server would not store (an empty one), left out"""
    flags_dropped: int = Field(default=0, ge=0)
    """what the source sent as flags that is none (not an RFC 3501 atom), left off the copies"""
    failure: FailureReason | None = None
    skipped: FolderSkip | None = None
    """this folder is left out (the others go on)"""
    limit: int | None = None
    """with failure byte_limit or too_many_folders: the limit reached"""


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


class PurgePlanned(BaseModel):
    """A folder here as the purge found it at its start (services/copyjob/domain/purge.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    """as our server spells it (modified UTF-7)"""
    uidvalidity: int
    below_uid: int
    messages: int
    remove: bool


class GetRetention(JobCommand):
    """Admin: the account's last retention pass (when, as of when, what moved and went)."""

    type: Literal["GetRetention"] = "GetRetention"


class DueRetention(InternalCommand):
    """Internal, from the retention sweep of any instance: the account's pass of this period is
    due. Decided in the account's turn, so a pass is queued once per period however many send it."""

    KEY_FIELD = "address"
    type: Literal["DueRetention"] = "DueRetention"
    address: AddressText
    period: int
    as_of: datetime


class RecordRetention(InternalCommand):
    """Internal, from the retention worker: the pass done."""

    KEY_FIELD = "address"
    type: Literal["RecordRetention"] = "RecordRetention"
    address: AddressText
    period: int
    as_of: datetime
    archived: int
    expunged: int


class RecordPurgePlan(InternalCommand):
    """Internal, from the purge's planning step: every folder with what goes from it."""

    KEY_FIELD = "address"
    type: Literal["RecordPurgePlan"] = "RecordPurgePlan"
    address: AddressText
    job_id: JobId
    folders: list[PurgePlanned]


class RecordRemoved(InternalCommand):
    """Internal, from the purge's last step: the user's folders removed (emptied ones only)."""

    KEY_FIELD = "address"
    type: Literal["RecordRemoved"] = "RecordRemoved"
    address: AddressText
    job_id: JobId
    removed: list[str]
    kept: list[str] = Field(default_factory=list)
    """folders of the user's that mail reached while the purge ran: kept with that mail"""


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


class CheckStart(WorkItem):
    """A StartCopy's slow checks, out of the account's turn: the user's own password first (the
    account service), then the source host's addresses (DNS); the answer is OpenJob's."""

    QUEUE = "check"
    CONCURRENCY = 8
    type: Literal["CheckStart"] = "CheckStart"
    address: AddressText
    job_id: JobId
    sealed: str = Field(repr=False)
    """the user's session token and current password, sealed (the copy job's key): only for this check"""
    source_host: HostText
    requester: Requester | None = None


class OpenJob(InternalCommand):
    """Internal, from CheckStart: the checks' outcome for the StartCopy waiting on them (its answer)."""

    KEY_FIELD = "address"
    type: Literal["OpenJob"] = "OpenJob"
    address: AddressText
    job_id: JobId
    addresses: list[str] = Field(default_factory=list)
    """the source host's checked addresses (the workers connect to these only)"""
    refusal: Rejected | None = None
    """why the start is refused (the password, the host), as the StartCopy's answer"""
    answers: Requester | None = None
    """the StartCopy's client: the kit sends it this command's reply"""


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


class PurgeStep(WorkItem):
    """One step of a purge: `plan` (list the folders, fix what goes), `empty` (one folder), `remove`
    (the user's emptied folders, children first, once every folder is empty)."""

    QUEUE = "purge"
    type: Literal["PurgeStep"] = "PurgeStep"
    address: AddressText
    job_id: JobId
    step: Literal["plan", "empty", "remove"]
    folder: str = ""


class RetainMailbox(WorkItem):
    """One account's retention pass: INBOX mail saved before the cut-off to Archive, Trash mail
    saved before its cut-off expunged."""

    QUEUE = "retention"
    CONCURRENCY = 8
    type: Literal["RetainMailbox"] = "RetainMailbox"
    address: AddressText
    period: int
    as_of: datetime


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
    copied: int = 0
    already_there: int = 0
    copied_bytes: int = 0
    skipped_too_big: int = 0
    skipped_refused: int = 0
    """messages our mail server would not store (an empty one), each named in GetJob"""
    flags_dropped: int = 0
    """source flags that were none (not RFC 3501 atoms), left off the copies"""
    removed: int = 0
    """a purge's: messages removed"""
    folders_removed: int = 0
    skipped_folders: list[str] = Field(default_factory=list)
    """source folders left out (their names, readable), each with why in GetJob"""
    renamed_folders: int = 0
    """source folders stored under a safe name, theirs having no valid form here"""


class JobFailed(JobEvent):
    ROUTING_KEY = "copyjob.job.failed"
    type: Literal["JobFailed"] = "JobFailed"
    reason: FailureReason
    copied: int = 0
    limit: int | None = None
    """byte_limit: the job's byte limit; too_many_folders: the folder limit"""


class JobCancelled(JobEvent):
    ROUTING_KEY = "copyjob.job.cancelled"
    type: Literal["JobCancelled"] = "JobCancelled"
    copied: int = 0


CLIENT_COMMANDS = (StartCopy, PurgeMailbox, CancelJob, GetJob, GetRetention)
