"""An account's delivery rules and every limit SPEC sets on them. Pure; no I/O.

A rule set is what the mail server must do with each message delivered to the account: tag and
file spam, reply, and whether to keep the message. It has a version that grows with each change;
what was last deployed is tracked beside it (the mail server follows the rule set, never the
other way round).
"""

import unicodedata
from dataclasses import dataclass, field, replace

from shared.plans import Capability, Plan, allows

MAX_AUTOREPLY_WIDTH = 600
"""SPEC: 600 half-width or 300 full-width characters; full-width counts 2"""
WIDE = frozenset({"W", "F", "A"})
"""East Asian Width classes counted as full-width (A: ambiguous, full-width in Japanese text)"""
NOT_ROUND_TRIPPING = {
    "\u2015": "HORIZONTAL BAR", "\u301c": "WAVE DASH", "\uff5e": "FULLWIDTH TILDE",
    "\u2016": "DOUBLE VERTICAL LINE", "\u2225": "PARALLEL TO", "\uff0d": "FULLWIDTH HYPHEN-MINUS",
    "\u2212": "MINUS SIGN", "\u00a2": "CENT SIGN", "\uffe0": "FULLWIDTH CENT SIGN", "\u00a3": "POUND SIGN",
    "\uffe1": "FULLWIDTH POUND SIGN", "\u00ac": "NOT SIGN", "\uffe2": "FULLWIDTH NOT SIGN",
}
"""SPEC: characters that do not survive ISO-2022-JP/Shift_JIS round trips (refused on
business-standard and kwc); ASCII '~' and '-' are fine"""
NEWLINES = ("\r\n", "\r")


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

    def changed(self, **fields: object) -> "RuleSet":
        return replace(self, **fields, version=self.version + 1)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Violation:
    field: str
    code: str
    message: str


@dataclass(frozen=True)
class Refused(Exception):
    """Every rule a change breaks, at once."""

    violations: tuple[Violation, ...] = field(default=())


def width(text: str) -> int:
    """SPEC's count: 2 per code point of East Asian Width W, F or A, 1 otherwise; a newline 1."""
    text = text.replace("\r\n", "\n")
    return sum(2 if unicodedata.east_asian_width(ch) in WIDE else 1 for ch in text)


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
                                  f"{MAX_AUTOREPLY_WIDTH} (full-width characters count 2, others 1)"))
    if not allows(plan, Capability.AUTOREPLY_ANY_CHARACTER):
        found = sorted({ch for ch in text if ch in NOT_ROUND_TRIPPING})
        if found:
            shown = ", ".join(f"{ch} (U+{ord(ch):04X} {NOT_ROUND_TRIPPING[ch]})" for ch in found)
            problems.append(Violation("text", "unsupported_character",
                                      f"on the {plan} plan the autoreply text must not contain {shown}: "
                                      "they do not survive ISO-2022-JP/Shift_JIS"))
    if controls := sorted({f"U+{ord(ch):04X}" for ch in text if _is_control(ch)}):
        problems.append(Violation("text", "control_character",
                                  f"the autoreply text must not contain control characters ({', '.join(controls)})"))
    if include_original and not allows(plan, Capability.AUTOREPLY_INCLUDE_BODY):
        problems.append(Violation("include_original", "not_allowed_on_plan",
                                  f"including the original body is not available on the {plan} plan"))
    return problems


def _is_control(ch: str) -> bool:
    return (ch not in "\n\t" and unicodedata.category(ch) in ("Cc", "Cs")) or ch in "\u2028\u2029"


def with_autoreply(rules: RuleSet, text: str, include_original: bool) -> RuleSet:
    text = normalized_text(text)
    if problems := autoreply_violations(rules.plan, text, include_original):
        raise Refused(tuple(problems))
    return rules.changed(autoreply=Autoreply(text, include_original))


def with_spam_sort(rules: RuleSet, on: bool) -> RuleSet:
    if on and not allows(rules.plan, Capability.SPAM_AUTOSORT):
        raise Refused((Violation("on", "not_allowed_on_plan", f"spam auto-sort is not available on the {rules.plan} plan"),))
    return rules.changed(spam_sort=on)


def with_receive(rules: RuleSet, on: bool, *, accept_loss: bool) -> RuleSet:
    """[beyond] With receive off and nothing forwarding every message, mail is lost: only when the
    caller says so explicitly."""
    if not on and not accept_loss:
        raise Refused((Violation("accept_loss", "required",
                                 "with receive off and no forwarding of all mail, new mail is not kept anywhere; "
                                 "set accept_loss to confirm"),))
    return rules.changed(receive=on)
