"""Rule sets as documents of the kit's unit of work, `_id` = address. Beside the rules the document
keeps what the mail server runs: `deployed_version`, `pending` (behind), and the last failure."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.rules.domain.rules import Autoreply, Condition, Forward, RuleSet, forwarding_table
from shared.contracts.base import Event, WorkItem
from shared.messaging.unit_of_work import Doc, UnitOfWork
from shared.plans import Plan


def rules_doc(rules: RuleSet) -> Doc:
    reply = rules.autoreply
    return {"plan": str(rules.plan), "spam_tag": rules.spam_tag, "spam_sort": rules.spam_sort,
            "autoreply": {"text": reply.text, "include_original": reply.include_original} if reply else None,
            "receive": rules.receive, "rules_version": rules.version, "dropped": False,
            "forwards": [{"id": f.id, "condition": str(f.condition), "match": f.match, "destinations": list(f.destinations)}
                         for f in rules.forwards],
            "forward_token": rules.forward_token, "all_revision": rules.all_revision}


def rules_of(address: str, doc: Doc | None) -> RuleSet | None:
    if not doc or doc.get("dropped") or "plan" not in doc:
        return None
    reply = doc.get("autoreply")
    forwards = tuple(Forward(f["id"], Condition(f["condition"]), f["match"], tuple(f["destinations"]))
                     for f in doc.get("forwards", ()))
    return RuleSet(address=address, plan=Plan(doc["plan"]), spam_tag=doc["spam_tag"], spam_sort=doc["spam_sort"],
                   autoreply=Autoreply(reply["text"], reply["include_original"]) if reply else None,
                   receive=doc["receive"], version=doc["rules_version"], forwards=forwards,
                   forward_token=doc.get("forward_token", ""), all_revision=doc.get("all_revision", 0))


def deployment_of(doc: Doc | None) -> dict[str, Any]:
    """What GetRules says about the mail server: up to date, or pending (with the last failure)."""
    doc = doc or {}
    deployed, version = doc.get("deployed_version", 0), doc.get("rules_version", 0)
    return {"deployed_version": deployed, "state": "applied" if deployed >= version else "pending",
            "last_failure": doc.get("last_failure")}


class RulesInUnit:
    """The RuleSets port over the delivery's unit of work."""

    def __init__(self, unit: UnitOfWork) -> None:
        self._unit = unit

    @property
    def _doc(self) -> Doc:
        return self._unit.state or {}

    def current(self) -> RuleSet | None:
        return rules_of(self._unit.key, self._unit.state)

    def generation(self) -> datetime | None:
        generation: datetime | None = self._doc.get("generation")
        return generation

    def deployment(self) -> dict[str, Any]:
        return deployment_of(self._unit.state)

    def deployed_version(self) -> int:
        return int(self._doc.get("deployed_version", 0))

    def forward_keys(self) -> list[str]:
        """Forwarding addresses that may be in Postfix's map: every key of a saved version not yet pruned."""
        return list(self._doc.get("forward_keys", []))

    def save(self, rules: RuleSet, *, events: Sequence[Event] = (), work: Sequence[WorkItem] = (),
             generation: datetime | None = None, in_sync: bool = False) -> None:
        live = self.forward_keys()
        fields = {**rules_doc(rules), "pending": not in_sync,
                  "forward_keys": live + [key for key in forwarding_table(rules) if key not in live]}
        if in_sync:
            fields |= {"deployed_version": rules.version, "last_failure": None}
        if generation is not None:
            fields["generation"] = generation
        self._unit.stage(fields, events=events, work=work)

    def drop(self, *, work: Sequence[WorkItem] = ()) -> None:
        self._unit.stage({"dropped": True, "pending": False, "autoreply": None, "forwards": [], "forward_keys": []},
                         work=work)

    def record_deployed(self, version: int, *, events: Sequence[Event], work: Sequence[WorkItem] = (),
                        forward_keys: list[str] | None = None) -> None:
        behind = version < self._doc.get("rules_version", 0)
        fields = {"deployed_version": version, "pending": behind, "last_failure": None}
        if forward_keys is not None:
            fields["forward_keys"] = forward_keys
        self._unit.stage(fields, events=events, work=work)

    def record_failure(self, reason: str, *, events: Sequence[Event]) -> None:
        self._unit.stage({"last_failure": reason}, events=events)

    def request(self, work: Sequence[WorkItem]) -> None:
        self._unit.stage({}, work=work)
