"""Commands and events owned by the rules service."""

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import Field

from shared.contracts.account import AddressText, PlanName
from shared.contracts.base import Command, Event, FieldError, InternalCommand, Params, RejectCode, WorkItem

SERVICE = "rules"

RulesRejectCode = RejectCode
"""Every code the rules service answers: the shared ones only."""

RulesFieldCode = Literal[
    "empty", "too_wide", "unsupported_character", "control_character", "not_allowed_on_plan", "not_allowed",
    "too_long", "too_many_rules", "invalid_address", "internal_domain", "own_address", "duplicate", "too_many",
    "not_found", "required",
]
"""Every field code the rules service's rules answer (the kit's shared ones aside)."""

REJECT_CODES: tuple[RulesRejectCode, ...] = get_args(RulesRejectCode)
FIELD_CODES: tuple[RulesFieldCode, ...] = get_args(RulesFieldCode)
FIELD_PARAMS: Mapping[RulesFieldCode, tuple[str, ...]] = {
    "empty": (),
    "too_wide": ("width", "max_width", "full_width_units", "other_units"),
    "unsupported_character": ("characters", "code_points", "plan"),
    "control_character": ("code_points",),
    "not_allowed_on_plan": ("plan",),
    "not_allowed": (),
    "too_long": ("length", "max_length"),
    "too_many_rules": ("count", "max_count"),
    "invalid_address": ("address", "min_length", "max_length", "max_local_length"),
    "internal_domain": ("address",),
    "own_address": ("address",),
    "duplicate": ("address",),
    "too_many": ("count", "max_count"),
    "not_found": ("entry_id",),
    "required": (),
}
"""the params each field code carries: `width` in width units (full-width counts 2), `characters` the
refused characters themselves and `code_points` theirs ("U+301C, U+FF5E"), `count` what the account
would have, `address` the destination as given"""


# The rules' limits, published so a client can show them before they are hit (the rules service
# applies them: services/rules/domain/rules.py).
MAX_AUTOREPLY_WIDTH = 600
"""SPEC: 600 half-width or 300 full-width characters; full-width counts 2"""
WIDE = frozenset({"W", "F", "A"})
"""East Asian Width classes counted as full-width (A: ambiguous, full-width in Japanese text)"""
WIDTH_UNITS = MappingProxyType({"full_width_units": 2, "other_units": 1})
"""what a full-width character counts, and any other (a newline too)"""
NOT_ROUND_TRIPPING = {
    "\u2015": "HORIZONTAL BAR", "\u301c": "WAVE DASH", "\uff5e": "FULLWIDTH TILDE",
    "\u2016": "DOUBLE VERTICAL LINE", "\u2225": "PARALLEL TO", "\uff0d": "FULLWIDTH HYPHEN-MINUS",
    "\u2212": "MINUS SIGN", "\u00a2": "CENT SIGN", "\uffe0": "FULLWIDTH CENT SIGN", "\u00a3": "POUND SIGN",
    "\uffe1": "FULLWIDTH POUND SIGN", "\u00ac": "NOT SIGN", "\uffe2": "FULLWIDTH NOT SIGN",
}
"""SPEC: characters that do not survive ISO-2022-JP/Shift_JIS round trips (refused on
business-standard and kwc); ASCII '~' and '-' are fine"""
MAX_DESTINATIONS = 300
"""SPEC: destination addresses per account, counted over all forwarding entries"""
MAX_RULES = 99
"""[choice] from/subject forwarding rules per account: each is one redirect, and with the one for
`all` a delivery then makes at most 100, the most Pigeonhole performs (the 101st fails the delivery)"""
MAX_MATCH_LENGTH = 256
"""[choice] characters of a from/subject keyword (a Subject line is rarely longer)"""


class RulesFieldError(FieldError):
    code: RulesFieldCode

    if TYPE_CHECKING:  # the code is checked where it is built (pydantic's mypy plugin leaves __init__ untyped)
        def __init__(self, *, field: str, code: RulesFieldCode, message: str, params: Params = ...) -> None: ...

AutoreplyText = Annotated[str, Field(max_length=4000)]
"""transport bound only; the rule (600 width units) is the domain's, so its refusal names it"""


class RulesCommand(Command):
    """A command on one account's rules, keyed by its address."""

    KEY_FIELD = "address"
    address: AddressText


class SetSpamTag(RulesCommand):
    type: Literal["SetSpamTag"] = "SetSpamTag"
    on: bool


class SetSpamSort(RulesCommand):
    type: Literal["SetSpamSort"] = "SetSpamSort"
    on: bool


class SetAutoreply(RulesCommand):
    type: Literal["SetAutoreply"] = "SetAutoreply"
    text: AutoreplyText
    include_original: bool = False


class DeleteAutoreply(RulesCommand):
    type: Literal["DeleteAutoreply"] = "DeleteAutoreply"


class SetReceive(RulesCommand):
    type: Literal["SetReceive"] = "SetReceive"
    on: bool
    accept_loss: bool = False
    """turning receive off with no forwarding of all mail loses new mail: the caller confirms"""


ForwardDestination = Annotated[str, Field(min_length=1, max_length=320)]
"""transport bounds only; what makes a destination valid is the domain's rule, so its refusal names it"""


class AddForwarding(RulesCommand):
    """`all`: every message, one entry per destination; `from` / `subject`: the From address or the
    decoded Subject contains `match` (ASCII letters in either case), one entry for all destinations."""

    type: Literal["AddForwarding"] = "AddForwarding"
    condition: Literal["all", "from", "subject"]
    match: Annotated[str, Field(max_length=1000)] = ""
    destinations: Annotated[list[ForwardDestination], Field(min_length=1, max_length=400)]


class RemoveForwarding(RulesCommand):
    type: Literal["RemoveForwarding"] = "RemoveForwarding"
    entry_id: Annotated[str, Field(min_length=1, max_length=40)]
    accept_loss: bool = False
    """removing the last forward of all mail while receive is off loses new mail: the caller confirms"""


class GetRules(RulesCommand):
    type: Literal["GetRules"] = "GetRules"


class AdoptAccount(InternalCommand):
    """Internal, from AccountCreated: the account's rules start at the defaults."""

    KEY_FIELD = "address"
    type: Literal["AdoptAccount"] = "AdoptAccount"
    address: AddressText
    plan: PlanName
    generation: datetime


class DropRules(InternalCommand):
    """Internal, from AccountDeleted: the rules go (the account service removes the home and its scripts)."""

    KEY_FIELD = "address"
    type: Literal["DropRules"] = "DropRules"
    address: AddressText
    deleted_at: datetime


class RecordDeployment(InternalCommand):
    """Internal, from the deploy worker: the mail server now runs `version` (or failed to take it)."""

    KEY_FIELD = "address"
    type: Literal["RecordDeployment"] = "RecordDeployment"
    address: AddressText
    version: int
    failure: Annotated[str, Field(max_length=500)] | None = None


class Redeploy(InternalCommand):
    """Internal, from the reconcile sweep: deploy again what is behind."""

    KEY_FIELD = "address"
    type: Literal["Redeploy"] = "Redeploy"
    address: AddressText


class PruneForwards(WorkItem):
    """Remove forwarding addresses no deployed script can redirect to any more (never used again)."""

    QUEUE = "prune"
    OVERLAP_SAFE = True
    type: Literal["PruneForwards"] = "PruneForwards"
    address: AddressText
    keys: list[str]


class DeployRules(WorkItem):
    """Put the account's forwarding addresses into Postfix's map, compile its current rules and make
    them its active Sieve script (ManageSieve)."""

    QUEUE = "deploy"
    OVERLAP_SAFE = True
    EAGER = True
    type: Literal["DeployRules"] = "DeployRules"
    address: AddressText
    version: int


class RulesChanged(Event):
    ROUTING_KEY = "rules.rules.changed"
    type: Literal["RulesChanged"] = "RulesChanged"
    address: str
    version: int
    actor: str


class RulesApplied(Event):
    ROUTING_KEY = "rules.rules.applied"
    type: Literal["RulesApplied"] = "RulesApplied"
    address: str
    version: int


class RulesApplyFailed(Event):
    ROUTING_KEY = "rules.rules.apply_failed"
    type: Literal["RulesApplyFailed"] = "RulesApplyFailed"
    address: str
    version: int
    reason: str


CLIENT_COMMANDS = (SetSpamTag, SetSpamSort, SetAutoreply, DeleteAutoreply, SetReceive, AddForwarding, RemoveForwarding,
                   GetRules)
