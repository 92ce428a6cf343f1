"""Rules command handlers: authorize, apply the domain rules, stage the change with its event and the
deployment to do. Nothing here waits for the mail server: a DeployRules work item takes the change
there, and RecordDeployment brings the outcome back into the account's turn."""

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.rules.application.ports import Outbound, RuleSets, Sessions
from services.rules.domain.rules import (
    Condition,
    Forward,
    Refused,
    RuleSet,
    Violation,
    forwarding_table,
    with_autoreply,
    with_forward,
    with_receive,
    with_spam_sort,
    without_forward,
)
from shared.auth import Actor
from shared.contracts.base import Accepted, RejectCode, Rejected, Reply, rejection
from shared.contracts.rules import (
    AddForwarding,
    AdoptAccount,
    DeleteAutoreply,
    DeployRules,
    DropRules,
    GetRules,
    PruneForwards,
    RecordDeployment,
    Redeploy,
    RemoveForwarding,
    RulesApplied,
    RulesApplyFailed,
    RulesChanged,
    RulesCommand,
    RulesFieldError,
    SetAutoreply,
    SetReceive,
    SetSpamSort,
    SetSpamTag,
)
from shared.generations import of_earlier_generation
from shared.plans import Plan


@dataclass(frozen=True)
class Deps:
    sessions: Sessions
    outbound: Outbound
    internal_domains: frozenset[str] = frozenset()
    """the mail system's own domains (forwarding addresses, SRS): never a forward's destination"""


Change = Callable[[RuleSet, Any, Deps], RuleSet]

CHANGES: Mapping[type[RulesCommand], Change] = {
    SetSpamTag: lambda rules, c, _: rules.changed(spam_tag=c.on) if rules.spam_tag != c.on else rules,
    SetSpamSort: lambda rules, c, _: with_spam_sort(rules, c.on) if rules.spam_sort != c.on else rules,
    SetAutoreply: lambda rules, c, _: with_autoreply(rules, c.text, c.include_original),
    DeleteAutoreply: lambda rules, c, _: rules.changed(autoreply=None) if rules.autoreply else rules,
    SetReceive: lambda rules, c, _: with_receive(rules, c.on, accept_loss=c.accept_loss) if rules.receive != c.on else rules,
    AddForwarding: lambda rules, c, deps: with_forward(rules, Condition(c.condition), c.match, c.destinations,
                                                       deps.internal_domains),
    RemoveForwarding: lambda rules, c, _: without_forward(rules, c.entry_id, accept_loss=c.accept_loss),
}
FORWARD_TOKEN_HEX = 16


async def handle(command: RulesCommand, store: RuleSets, deps: Deps) -> Reply:
    if isinstance(actor := await deps.sessions.actor_on(command, "the rules"), Rejected):
        return actor
    address = command.subject_key()
    if (rules := store.current()) is None:
        return rejection(command, "not_found", f"{address} has no mail account")
    if isinstance(command, GetRules):
        return Accepted(command_id=command.message_id, result=view(rules, store.deployment(), await deps.outbound.view(address)))
    return _change(command, actor, rules, store, deps)


def _change(command: RulesCommand, actor: Actor, rules: RuleSet, store: RuleSets, deps: Deps) -> Reply:
    try:
        changed = CHANGES[type(command)](rules, command, deps)
    except Refused as refusal:
        return _refused(command, refusal.violations)
    if changed != rules:
        event = RulesChanged(address=rules.address, version=changed.version, actor=actor.subject,
                             causation_id=command.message_id, correlation_id=command.correlation_id)
        store.save(changed, events=[event], work=[DeployRules(address=rules.address, version=changed.version)])
    return Accepted(command_id=command.message_id, result={"address": rules.address, "version": changed.version})


def _refused(command: RulesCommand, violations: tuple[Violation, ...]) -> Rejected:
    errors = tuple(RulesFieldError(field=v.field, code=v.code, message=v.message, params=dict(v.params)) for v in violations)
    code: RejectCode = ("not_allowed_on_plan" if all(v.code == "not_allowed_on_plan" for v in violations)
                        else "validation_failed")
    message = errors[0].message if len(errors) == 1 else "the change breaks several rules"
    return rejection(command, code, message, *errors)


def view(rules: RuleSet, deployment: dict[str, Any], outbound: dict[str, Any]) -> dict[str, Any]:
    reply = rules.autoreply
    return {"address": rules.address, "plan": str(rules.plan), "version": rules.version,
            "spam_tag": rules.spam_tag, "spam_sort": rules.spam_sort, "receive": rules.receive,
            "autoreply": {"text": reply.text, "include_original": reply.include_original} if reply else None,
            "forwards": [_forward_view(f) for f in sorted(rules.forwards, key=_listing_order)],
            "mail_server": deployment, "outbound": outbound}


def _listing_order(entry: Forward) -> tuple[int, str, int]:
    """`all` entries by their destination, then the rules in the order they were made."""
    if entry.condition is Condition.ALL:
        return 0, entry.destinations[0].lower(), 0
    return 1, "", int(entry.id)


def _forward_view(entry: Forward) -> dict[str, Any]:
    return {"id": entry.id, "condition": str(entry.condition), "match": entry.match,
            "destinations": sorted(entry.destinations, key=str.lower)}


async def adopt_account(command: AdoptAccount, store: RuleSets) -> Accepted:
    """Defaults for a new account (or a new generation of the address). The defaults are what a home
    without a script does already, so nothing is deployed."""
    known = store.generation()
    if known is None or known < command.generation:
        previous = store.current()
        version = (previous.version if previous else store.deployed_version()) + 1
        store.save(RuleSet(address=command.subject_key(), plan=Plan(command.plan), version=version,
                           forward_token=uuid.uuid4().hex[:FORWARD_TOKEN_HEX]),
                   generation=command.generation, in_sync=True)
    return Accepted(command_id=command.message_id)


async def drop_rules(command: DropRules, store: RuleSets) -> Accepted:
    if store.current() and not of_earlier_generation(command.deleted_at, store.generation()):
        keys = store.forward_keys()
        store.drop(work=[PruneForwards(address=command.subject_key(), keys=keys)] if keys else [])
    return Accepted(command_id=command.message_id)


async def record_deployment(command: RecordDeployment, store: RuleSets) -> Accepted:
    address = command.subject_key()
    if command.failure is not None:
        event = RulesApplyFailed(address=address, version=command.version, reason=command.failure)
        store.record_failure(command.failure, events=[event])
    elif command.version > store.deployed_version():
        applied = [RulesApplied(address=address, version=command.version)]
        rules = store.current()
        if rules is None or command.version < rules.version:
            store.record_deployed(command.version, events=applied)
        else:  # the mail server runs the newest rules: what no version to come can use goes
            needed = forwarding_table(rules)
            stale = [key for key in store.forward_keys() if key not in needed]
            store.record_deployed(command.version, events=applied, forward_keys=list(needed),
                                  work=[PruneForwards(address=address, keys=stale)] if stale else [])
    return Accepted(command_id=command.message_id)


async def redeploy(command: Redeploy, store: RuleSets) -> Accepted:
    rules = store.current()
    if rules and store.deployment()["state"] == "pending":
        store.request([DeployRules(address=rules.address, version=rules.version)])
    return Accepted(command_id=command.message_id)
