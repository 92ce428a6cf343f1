"""A rule set compiled into one Sieve script (RFC 5228 and extensions). Pure; no I/O.

User text only ever appears inside quoted strings, with `\\` and `"` escaped (RFC 5228 2.4.2) and,
since the script uses the variables extension, every `$` written as `${dollar}`: a variable holding
a lone "$", whose expansion is not expanded again (RFC 5229 3), so no text can name a variable,
end a string, or add a command. The script is built from one block per concern, in delivery order,
so forwarding (part 2) adds its block without touching the others.
"""

from collections.abc import Callable
from dataclasses import dataclass

from services.rules.domain.rules import Condition, RuleSet, all_key, forwarding_table, rule_key

SPAM_TEST = 'header :is "X-Spam-Flag" "YES"'
CHECKED_HAM = 'allof (exists "X-Spam-Checker-Version", not header :is "X-Spam-Flag" "YES")'
"""our checker looked and found no spam: only such mail is forwarded or answered. A sender's own
X-Spam-* headers never arrive (Postfix drops them before the checker adds its own), so a message
the checker skipped (too large, spamd down) carries no verdict, and goes no further than the mailbox"""
SPAM_PREFIX = "[SPAM] "
JUNK = "Junk"
ORIGINAL_TEXT_LIMIT = 2000
"""characters of the original text part quoted in an sv-basic autoreply"""
SPF_PASSED = "^[^;]+;[[:space:]]*spf=pass[[:space:]]+([(][^)]*[)][[:space:]]*)?smtp[.]mailfrom="
"""the SPF milter found the envelope sender's domain allows the sending host: only then does an
sv-basic autoreply quote the sender's text (never reflected to a forged address). Every
Authentication-Results a sender wrote is dropped before the milter adds its own (deploy/postfix),
and its result comes first, before any text the sender chose (HELO, envelope sender). Only the
envelope sender's identity counts: a HELO pass (the milter's answer when the sender's domain has no
record) says nothing of the address a reply would go to"""
VACATION_DAYS = 1
FORWARD_DOMAIN = "forward.mailss.invalid"
"""where the forwarding addresses live: Postfix expands them (virtual_alias_maps), only for Sieve"""
OUTBOUND_PER_HOUR = 3000
"""[choice] messages an account may send out an hour (each destination of a forwarded copy and each
autoreply counts one): a 300-destination forward of ten messages an hour, not a spam cannon"""
METER = "mailss-outbound"
METER_EXTENSION = "vnd.dovecot.execute"
FORWARDED = "forwarded"
"""the variable that says the forward of all mail went out (so receive off may drop the message)"""
HELD = "held"
"""the variable that says a forward or reply was held over the hour's limit (so the message stays)"""
LIST_HEADERS = ("List-Id", "List-Owner", "List-Subscribe", "List-Post", "List-Unsubscribe", "List-Help", "List-Archive")
SYSTEM_SENDERS = ("MAILER-DAEMON*", "LISTSERV*", "majordomo*", "*-request", "owner-*")
RECIPIENT_HEADERS = ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")
REPLIED = "mailss-autoreply"
"""the `duplicate` handle of the senders answered (or held) today"""
FORWARDED_BY = "X-MailSS-Forwarded-By"
"""the loop marker: each account that forwarded a copy adds its token (Postfix strips the header
from mail coming in from the world and from mail leaving for it)"""
CONDITION_TESTS = {
    Condition.FROM: 'address :all :contains :comparator "i;ascii-casemap" "From"',
    Condition.SUBJECT: 'header :contains :comparator "i;ascii-casemap" "Subject"',
}
"""a literal substring (:contains has no wildcards), ASCII letters in either case, nothing else
folded; Pigeonhole decodes RFC 2047 subjects before the test"""


def quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "${dollar}")
    return f'"{escaped}"'


@dataclass(frozen=True)
class Outside:
    """What a script needs to know of the mail system around it."""

    forward_domain: str = FORWARD_DOMAIN
    per_hour: int = OUTBOUND_PER_HOUR


Block = Callable[[RuleSet, Outside], tuple[set[str], list[str]]]
"""one concern: the extensions it needs and its lines"""


def _metered(messages: int, outside: Outside, action: list[str], indent: str) -> list[str]:
    """`action` if the outbound meter says yes (services/rules/adapters/outbound_meter.py: `messages`
    more fit in the account's hour, and count); its no, or no answer at all, marks the message held,
    and the delivery block keeps it."""
    return [f'{indent}if execute "{METER}" ["{messages}", "{outside.per_hour}"] {{', *(indent + "  " + a for a in action),
            f"{indent}}} else {{", f'{indent}  set "{HELD}" "yes";', f"{indent}}}"]


def _answerable(address: str) -> str:
    """What vacation itself refuses to answer (Pigeonhole 0.5's act_vacation_commit: no sender, the
    account itself, system senders, lists, automatic mail, mail not addressed to the account), asked
    first: the meter and the day's `duplicate` then count only replies vacation sends."""
    local, _, domain = address.partition("@")
    mine = f"[{quoted(address)}, {quoted(local + '+*@' + domain)}]"
    names = ", ".join(f'"{name}"' for name in RECIPIENT_HEADERS)
    return "allof (" + ", ".join([
        'envelope :matches "from" "?*"', f'not envelope :all :matches "from" {mine}',
        "not envelope :localpart :matches \"from\" [" + ", ".join(f'"{s}"' for s in SYSTEM_SENDERS) + "]",
        "not anyof (" + ", ".join(f'exists "{h}"' for h in LIST_HEADERS) + ")",
        'not allof (exists "Auto-Submitted", not header :is "Auto-Submitted" "no")',
        'not header :is "Precedence" ["junk", "bulk", "list"]',
        f"address :all :matches [{names}] {mine}"]) + ")"


def _loop_guard(rules: RuleSet, _: Outside) -> tuple[set[str], list[str]]:
    """A copy this account forwarded before has come back (A forwards to B, B to A): it is stored
    already, so it is dropped here and goes no further."""
    if not rules.forwards:
        return set(), []
    return set(), [f'if header :is "{FORWARDED_BY}" {quoted(rules.forward_token)} {{', "  discard;", "  stop;", "}"]


def _forwarding(rules: RuleSet, outside: Outside) -> tuple[set[str], list[str]]:
    """One redirect per forwarding address, only for mail our checker found no spam in [choice: 300
    destinations must not amplify spam, or mail nobody checked], and only while its destinations fit
    in the account's hour; Postfix expands each address to its destinations. `:copy` leaves the
    keeping to the delivery block, which learns from `forwarded` whether all mail went on."""
    if not rules.forwards:
        return set(), []
    table, domain = forwarding_table(rules), outside.forward_domain
    lines = [f"if {CHECKED_HAM} {{", f'  addheader "{FORWARDED_BY}" {quoted(rules.forward_token)};']
    if (everything := all_key(rules)) in table:
        lines += _metered(len(table[everything]), outside,
                          [f"redirect :copy {quoted(everything + '@' + domain)};", f'set "{FORWARDED}" "all";'], "  ")
    for entry in rules.forwards:
        if entry.condition is not Condition.ALL:
            lines += [f"  if {CONDITION_TESTS[entry.condition]} {quoted(entry.match)} {{",
                      *_metered(len(entry.destinations), outside,
                                [f"redirect :copy {quoted(rule_key(rules, entry) + '@' + domain)};"], "    "), "  }"]
    return {"copy", "editheader", "variables", METER_EXTENSION}, [*lines, "}"]


def _spam_tag(rules: RuleSet, _: Outside) -> tuple[set[str], list[str]]:
    if not rules.spam_tag:
        return set(), []
    return {"editheader", "variables"}, [
        f"if {SPAM_TEST} {{",
        '  set "subject" "";',
        '  if header :matches "Subject" "*" { set "subject" "${1}"; }',
        '  deleteheader "Subject";',
        f'  addheader :last "Subject" "{SPAM_PREFIX}${{subject}}";',
        "}",
    ]


def _autoreply(rules: RuleSet, outside: Outside) -> tuple[set[str], list[str]]:
    """Vacation (RFC 5230): once per sender per day, never to lists or auto-generated mail (the
    implementation's RFC 3834 checks), [choice] only to mail our checker found no spam in (no
    backscatter, nor to mail nobody checked), and only while one more fits in the account's hour.
    The meter is asked only where vacation would answer: what it refuses is asked first, and a
    sender answered (or held) today is not asked again (`duplicate`, RFC 7352, keeps that day). The
    original is quoted only to a sender that passed SPF."""
    reply = rules.autoreply
    if reply is None:
        return set(), []
    lines = [f"if {CHECKED_HAM} {{"]
    needs = {"vacation", "variables", "envelope", "duplicate", METER_EXTENSION}
    reason = quoted(reply.text)
    if reply.include_original:
        needs |= {"foreverypart", "mime", "extracttext", "regex"}
        lines += [
            '  set "original" "";',
            f'  if header :regex "Authentication-Results" "{SPF_PASSED}" {{',
            '    foreverypart {',
            '      if header :mime :contenttype "Content-Type" "text/plain" {',
            f'        extracttext :first {ORIGINAL_TEXT_LIMIT} "original";',
            "        break;",
            "      }",
            "    }",
            "  }",
        ]
        reason = reason[:-1] + '\n\n${original}"'
    lines += [
        f"  if {_answerable(rules.address)} {{",
        '    if envelope :matches "from" "*" { set "sender" "${1}"; }',
        f'    if not duplicate :handle "{REPLIED}" :uniqueid "${{sender}}" :seconds {VACATION_DAYS * 86400} {{',
        *_metered(1, outside, [f"vacation :days {VACATION_DAYS} {reason};"], "      "),
        "    }",
        "  }",
        "}",
    ]
    return needs, lines


def _delivery(rules: RuleSet, _: Outside) -> tuple[set[str], list[str]]:
    """Receive off stores nothing the forward of all mail sent on; what it did not send (spam, mail the
    checker skipped) is kept, never lost. Receive off without such a forward was confirmed as a loss.
    Either way a message whose forward or reply was held over the hour's limit stays."""
    lines: list[str] = []
    kept_if_held = f'string :is "${{{HELD}}}" ""'
    if not rules.receive and not any(f.condition is Condition.ALL for f in rules.forwards):
        if not rules.forwards and rules.autoreply is None:
            return set(), ["discard;"]
        return {"variables"}, [f"if {kept_if_held} {{", "  discard;", "  stop;", "}"]
    if not rules.receive:
        lines = [f'if allof (string :is "${{{FORWARDED}}}" "all", {kept_if_held}) {{', "  discard;", "  stop;", "}"]
    if rules.spam_sort:
        return {"fileinto"}, [*lines, f"if {SPAM_TEST} {{", f'  fileinto "{JUNK}";', "}"]
    return set(), lines


BLOCKS: tuple[Block, ...] = (_loop_guard, _spam_tag, _forwarding, _autoreply, _delivery)


def compile_sieve(rules: RuleSet, outside: Outside = Outside()) -> str:
    needs: set[str] = set()
    body: list[str] = []
    for block in BLOCKS:
        extensions, lines = block(rules, outside)
        needs |= extensions
        body += lines
    header = [f"# Written by the rules service (version {rules.version}); changes made here are overwritten."]
    if needs:
        header.append("require [" + ", ".join(f'"{name}"' for name in sorted(needs)) + "];")
    if "variables" in needs:
        header.append('set "dollar" "$";')
    return "\n".join([*header, *body, ""])
