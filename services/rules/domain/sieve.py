"""A rule set compiled into one Sieve script (RFC 5228 and extensions). Pure; no I/O.

User text only ever appears inside quoted strings, with `\\` and `"` escaped (RFC 5228 2.4.2) and,
since the script uses the variables extension, every `$` written as `${dollar}`: a variable holding
a lone "$", whose expansion is not expanded again (RFC 5229 3), so no text can name a variable,
end a string, or add a command. The script is built from one block per concern, in delivery order,
so forwarding (part 2) adds its block without touching the others.
"""

from collections.abc import Callable

from services.rules.domain.rules import RuleSet

SPAM_TEST = 'header :is "X-Spam-Flag" "YES"'
SPAM_PREFIX = "[SPAM] "
JUNK = "Junk"
ORIGINAL_TEXT_LIMIT = 2000
"""characters of the original text part quoted in an sv-basic autoreply"""
VACATION_DAYS = 1


def quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "${dollar}")
    return f'"{escaped}"'


Block = Callable[[RuleSet], tuple[set[str], list[str]]]
"""one concern: the extensions it needs and its lines"""


def _spam_tag(rules: RuleSet) -> tuple[set[str], list[str]]:
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


def _autoreply(rules: RuleSet) -> tuple[set[str], list[str]]:
    """Vacation (RFC 5230): once per sender per day, never to lists or auto-generated mail (the
    implementation's RFC 3834 checks), and [choice] never to mail flagged as spam (backscatter)."""
    reply = rules.autoreply
    if reply is None:
        return set(), []
    lines = [f"if not {SPAM_TEST} {{"]
    needs = {"vacation", "variables"}
    reason = quoted(reply.text)
    if reply.include_original:
        needs |= {"foreverypart", "mime", "extracttext"}
        lines += [
            '  set "original" "";',
            '  foreverypart {',
            '    if header :mime :contenttype "Content-Type" "text/plain" {',
            f'      extracttext :first {ORIGINAL_TEXT_LIMIT} "original";',
            "      break;",
            "    }",
            "  }",
        ]
        reason = reason[:-1] + '\n\n${original}"'
    lines += [f"  vacation :days {VACATION_DAYS} {reason};", "}"]
    return needs, lines


def _delivery(rules: RuleSet) -> tuple[set[str], list[str]]:
    if not rules.receive:
        return set(), ["discard;"]
    if rules.spam_sort:
        return {"fileinto"}, [f"if {SPAM_TEST} {{", f'  fileinto "{JUNK}";', "}"]
    return set(), []


BLOCKS: tuple[Block, ...] = (_spam_tag, _autoreply, _delivery)


def compile_sieve(rules: RuleSet) -> str:
    needs: set[str] = set()
    body: list[str] = []
    for block in BLOCKS:
        extensions, lines = block(rules)
        needs |= extensions
        body += lines
    header = [f"# Written by the rules service (version {rules.version}); changes made here are overwritten."]
    if needs:
        header.append("require [" + ", ".join(f'"{name}"' for name in sorted(needs)) + "];")
    if "variables" in needs:
        header.append('set "dollar" "$";')
    return "\n".join([*header, *body, ""])
