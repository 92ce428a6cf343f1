"""An account's delivery rules and every limit SPEC sets on them (the numbers are the contract's). Pure; no I/O.

A rule set is what the mail server must do with each message delivered to the account: tag and
file spam, reply, and whether to keep the message. It has a version that grows with each change;
what was last deployed is tracked beside it (the mail server follows the rule set, never the
other way round).
"""

import dataclasses
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from shared.contracts.rules import (  # the limits are the contract's: clients show them before they are hit
    MAX_AUTOREPLY_WIDTH,
    MAX_DESTINATIONS,
    MAX_MATCH_LENGTH,
    MAX_RULES,
    NOT_ROUND_TRIPPING,
    WIDE,
    WIDTH_UNITS,
    RulesFieldCode,
)
from shared.mail_addresses import LIMITS, address_problem, normalized
from shared.plans import Capability, Plan, allows

NEWLINES = ("\r\n", "\r")


class Condition(StrEnum):
    ALL = "all"
    FROM = "from"
    SUBJECT = "subject"


@dataclass(frozen=True)
class Forward:
    """A forwarding entry. `all` entries hold one destination each (SPEC: saving `all` with several
    destinations stores one entry per destination); a from/subject entry holds all the destinations
    of its rule and is never edited, only removed."""

    id: str
    condition: Condition
    match: str
    destinations: tuple[str, ...]


@dataclass(frozen=True)
class Autoreply:
    text: str
    include_original: bool = False
    """sv-basic: the sender's original text part is quoted in the reply"""


@dataclass(frozen=True)
class RuleSet:
    address: str
    plan: Plan
    spam_tag: bool = False
    spam_sort: bool = False
    autoreply: Autoreply | None = None
    receive: bool = True
    version: int = 1
    forwards: tuple[Forward, ...] = ()
    forward_token: str = ""
    """names this account's forwarding addresses and marks the copies it forwarded (loop check)"""
    all_revision: int = 0
    """the version at which the set of `all` destinations last changed: its forwarding address
    is new each time, so an address once removed is never filled again"""

    def changed(self, **fields: object) -> "RuleSet":
        return replace(self, **fields, version=self.version + 1)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Violation:
    field: str
    code: RulesFieldCode
    message: str
    params: Mapping[str, int | str] = dataclasses.field(default_factory=dict)
    """every number or name the message says, as the contract's FIELD_PARAMS names them"""


@dataclass(frozen=True)
class Refused(Exception):
    """Every rule a change breaks, at once."""

    violations: tuple[Violation, ...] = field(default=())


def width(text: str) -> int:
    """SPEC's count: 2 per code point of East Asian Width W, F or A, 1 otherwise; a newline 1."""
    text = text.replace("\r\n", "\n")
    wide, other = WIDTH_UNITS["full_width_units"], WIDTH_UNITS["other_units"]
    return sum(wide if unicodedata.east_asian_width(ch) in WIDE else other for ch in text)


def normalized_text(text: str) -> str:
    """Newlines as LF whatever the client sent (CRLF and CR count as one newline each)."""
    for newline in NEWLINES:
        text = text.replace(newline, "\n")
    return text


def autoreply_violations(plan: Plan, text: str, include_original: bool) -> list[Violation]:
    problems = []
    if not text.strip():
        problems.append(Violation("text", "empty", "the autoreply text must not be empty (delete the autoreply instead)"))
    if (used := width(text)) > MAX_AUTOREPLY_WIDTH:
        problems.append(Violation("text", "too_wide", f"the autoreply text is {used} width units; the limit is "
                                  f"{MAX_AUTOREPLY_WIDTH} (full-width characters count {WIDTH_UNITS['full_width_units']}, "
                                  f"others {WIDTH_UNITS['other_units']})",
                                  {"width": used, "max_width": MAX_AUTOREPLY_WIDTH, **WIDTH_UNITS}))
    if not allows(plan, Capability.AUTOREPLY_ANY_CHARACTER):
        found = sorted({ch for ch in text if ch in NOT_ROUND_TRIPPING})
        if found:
            shown = ", ".join(f"{ch} (U+{ord(ch):04X} {NOT_ROUND_TRIPPING[ch]})" for ch in found)
            problems.append(Violation("text", "unsupported_character",
                                      f"on the {plan} plan the autoreply text must not contain {shown}: "
                                      "they do not survive ISO-2022-JP/Shift_JIS",
                                      {"characters": "".join(found), "code_points": _code_points(found), "plan": str(plan)}))
    if controls := sorted({ch for ch in text if _is_control(ch)}):
        problems.append(Violation("text", "control_character",
                                  f"the autoreply text must not contain control characters ({_code_points(controls)})",
                                  {"code_points": _code_points(controls)}))
    if include_original and not allows(plan, Capability.AUTOREPLY_INCLUDE_BODY):
        problems.append(Violation("include_original", "not_allowed_on_plan",
                                  f"including the original body is not available on the {plan} plan", {"plan": str(plan)}))
    return problems


def _code_points(characters: Iterable[str]) -> str:
    return ", ".join(f"U+{ord(ch):04X}" for ch in characters)


def _is_control(ch: str) -> bool:
    return (ch not in "\n\t" and unicodedata.category(ch) in ("Cc", "Cs")) or ch in "\u2028\u2029"


def with_autoreply(rules: RuleSet, text: str, include_original: bool) -> RuleSet:
    text = normalized_text(text)
    if problems := autoreply_violations(rules.plan, text, include_original):
        raise Refused(tuple(problems))
    return rules.changed(autoreply=Autoreply(text, include_original))


def with_spam_sort(rules: RuleSet, on: bool) -> RuleSet:
    if on and not allows(rules.plan, Capability.SPAM_AUTOSORT):
        raise Refused((Violation("on", "not_allowed_on_plan", f"spam auto-sort is not available on the {rules.plan} plan",
                                 {"plan": str(rules.plan)}),))
    return rules.changed(spam_sort=on)


def with_receive(rules: RuleSet, on: bool, *, accept_loss: bool) -> RuleSet:
    """[beyond] With receive off and nothing forwarding every message, mail is lost: only when the
    caller says so explicitly."""
    if not on and not _forwards_all(rules.forwards) and not accept_loss:
        raise Refused((_LOSS,))
    return rules.changed(receive=on)


def _match_problems(condition: Condition, match: str) -> list[Violation]:
    if condition is Condition.ALL:
        return [Violation("match", "not_allowed", "a forward of all mail has no keyword")] if match else []
    problems = []
    if not match:
        problems.append(Violation("match", "empty", f"a {condition} forward needs a keyword"))
    if len(match) > MAX_MATCH_LENGTH:
        problems.append(Violation("match", "too_long", f"the keyword is {len(match)} characters; the limit is {MAX_MATCH_LENGTH}",
                                  {"length": len(match), "max_length": MAX_MATCH_LENGTH}))
    if controls := sorted({ch for ch in match if unicodedata.category(ch) in ("Cc", "Cs")}):
        problems.append(Violation("match", "control_character",
                                  f"the keyword must not contain control characters ({_code_points(controls)}): "
                                  "a From address or a Subject never holds them, so it could never match",
                                  {"code_points": _code_points(controls)}))
    return problems


def _destination_problems(rules: RuleSet, destinations: Iterable[str], internal: frozenset[str]) -> list[Violation]:
    problems, seen = [], {d.lower() for f in rules.forwards for d in f.destinations}
    wanted = list(destinations)
    if not wanted:
        problems.append(Violation("destinations", "empty", "a forward needs at least one destination"))
    for text in wanted:
        if (problem := address_problem(text)) is not None:
            problems.append(Violation("destinations", "invalid_address", f"the destination {text!r} {problem}",
                                      {"address": text, **LIMITS}))
        elif _in_any(text.partition("@")[2].lower(), internal):
            problems.append(Violation("destinations", "internal_domain",
                                      f"{text} is in one of the mail system's own internal domains", {"address": text}))
        elif text.lower() == rules.address.lower():
            problems.append(Violation("destinations", "own_address", f"{text} is this account's own address",
                                      {"address": text}))
        elif text.lower() in seen:
            problems.append(Violation("destinations", "duplicate", f"{text} is a destination already", {"address": text}))
        seen.add(text.lower())
    if (total := sum(len(f.destinations) for f in rules.forwards) + len(wanted)) > MAX_DESTINATIONS:
        problems.append(Violation("destinations", "too_many",
                                  f"the account would have {total} forwarding destinations; the limit is {MAX_DESTINATIONS}",
                                  {"count": total, "max_count": MAX_DESTINATIONS}))
    return problems


def _in_any(domain: str, domains: frozenset[str]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _rule_count_problems(rules: RuleSet, condition: Condition) -> list[Violation]:
    count = sum(f.condition is not Condition.ALL for f in rules.forwards)
    if condition is not Condition.ALL and count >= MAX_RULES:
        return [Violation("condition", "too_many_rules",
                          f"the account has {count} from/subject forwards already; the limit is {MAX_RULES}",
                          {"count": count, "max_count": MAX_RULES})]
    return []


def with_forward(rules: RuleSet, condition: Condition, match: str, destinations: Iterable[str],
                 internal_domains: frozenset[str] = frozenset()) -> RuleSet:
    """`internal_domains`: the mail system's own (the forwarding addresses', SRS), never a destination:
    mail sent there would be handled as ours, past every check a forward gets."""
    wanted = list(destinations)
    problems = (_match_problems(condition, match) + _rule_count_problems(rules, condition)
                + _destination_problems(rules, wanted, internal_domains))
    if problems:
        raise Refused(tuple(problems))
    version = rules.version + 1
    ordered = sorted((normalized(d) for d in wanted), key=str.lower)
    if condition is Condition.ALL:
        added = tuple(Forward(f"{version}-{n}", condition, "", (d,)) for n, d in enumerate(ordered, 1))
        return rules.changed(forwards=(*rules.forwards, *added), all_revision=version)
    return rules.changed(forwards=(*rules.forwards, Forward(str(version), condition, match, tuple(ordered))))


def without_forward(rules: RuleSet, entry_id: str, *, accept_loss: bool) -> RuleSet:
    gone = [f for f in rules.forwards if f.id == entry_id]
    if not gone:
        raise Refused((Violation("entry_id", "not_found", f"{rules.address} has no forwarding entry {entry_id!r}",
                                 {"entry_id": entry_id}),))
    kept = tuple(f for f in rules.forwards if f.id != entry_id)
    if not rules.receive and _forwards_all(rules.forwards) and not _forwards_all(kept) and not accept_loss:
        raise Refused((_LOSS,))
    revision = rules.version + 1 if gone[0].condition is Condition.ALL else rules.all_revision
    return rules.changed(forwards=kept, all_revision=revision)


def _forwards_all(forwards: Iterable[Forward]) -> bool:
    return any(f.condition is Condition.ALL for f in forwards)


_LOSS = Violation("accept_loss", "required",
                  "with receive off and no forwarding of all mail, new mail is not kept anywhere; "
                  "set accept_loss to confirm")


def forwarding_table(rules: RuleSet) -> Mapping[str, tuple[str, ...]]:
    """The local parts of the account's forwarding addresses (what its script redirects to, in the
    forwarding domain) -> their destinations."""
    table: dict[str, tuple[str, ...]] = {}
    everything = sorted((d for f in rules.forwards if f.condition is Condition.ALL for d in f.destinations), key=str.lower)
    if everything:
        table[all_key(rules)] = tuple(everything)
    for entry in rules.forwards:
        if entry.condition is not Condition.ALL:
            table[rule_key(rules, entry)] = entry.destinations
    return table


def all_key(rules: RuleSet) -> str:
    return f"{rules.forward_token}-a{rules.all_revision}"


def rule_key(rules: RuleSet, entry: Forward) -> str:
    return f"{rules.forward_token}-r{entry.id}"
