"""The Sieve compiler: golden scripts per feature and combination, Dovecot's own sievec accepts
every script, and no user text ever leaves its quoted string."""

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.rules.domain.rules import Autoreply, RuleSet
from services.rules.domain.sieve import METER_EXTENSION, OUTBOUND_PER_HOUR, compile_sieve
from shared.plans import Plan

HEADER = "# Written by the rules service (version 1); changes made here are overwritten."
BASE = RuleSet(address="taro@example.jp", plan=Plan.KWC)


def sievec_accepts(script: str) -> bool:
    """Dovecot's compiler, with the stack's configuration (its enabled extensions)."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "rules.sieve"
        source.write_text(script)
        done = subprocess.run(["sievec", "-c", os.environ["DOVECOT_CONF"], str(source), str(source) + ".svbin"],
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return True


VACATION_WOULD_ANSWER = (
    '  if allof (envelope :matches "from" "?*", not envelope :all :matches "from" ["a@b.jp", "a+*@b.jp"], '
    'not envelope :localpart :matches "from" ["MAILER-DAEMON*", "LISTSERV*", "majordomo*", "*-request", "owner-*"], '
    'not anyof (exists "List-Id", exists "List-Owner", exists "List-Subscribe", exists "List-Post", '
    'exists "List-Unsubscribe", exists "List-Help", exists "List-Archive"), '
    'not allof (exists "Auto-Submitted", not header :is "Auto-Submitted" "no"), '
    'not header :is "Precedence" ["junk", "bulk", "list"], '
    'address :all :matches ["To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"] ["a@b.jp", "a+*@b.jp"]) {')
"""what vacation itself declines, asked before the meter: only replies it sends are counted"""
REPLY_ONCE_A_DAY_WITHIN_THE_HOUR = [
    VACATION_WOULD_ANSWER, '    if envelope :matches "from" "*" { set "sender" "${1}"; }',
    '    if not duplicate :handle "mailss-autoreply" :uniqueid "${sender}" :seconds 86400 {',
    f'      if execute "mailss-outbound" ["1", "{OUTBOUND_PER_HOUR}"] {{']
"""an autoreply asks the outbound meter once per sender a day, where vacation would answer"""
END_REPLY = ["      } else {", '        set "held" "yes";', "      }", "    }", "  }", "}"]

GOLDEN = {
    "nothing": (BASE, [HEADER]),
    "spam tag": (RuleSet(address="a@b.jp", plan=Plan.KWC, spam_tag=True), [
        HEADER, 'require ["editheader", "variables"];', 'set "dollar" "$";',
        'if header :is "X-Spam-Flag" "YES" {', '  set "subject" "";',
        '  if header :matches "Subject" "*" { set "subject" "${1}"; }', '  deleteheader "Subject";',
        '  addheader :last "Subject" "[SPAM] ${subject}";', "}"]),
    "spam sort": (RuleSet(address="a@b.jp", plan=Plan.KWC, spam_sort=True), [
        HEADER, 'require ["fileinto"];', 'if header :is "X-Spam-Flag" "YES" {', '  fileinto "Junk";', "}"]),
    "receive off": (RuleSet(address="a@b.jp", plan=Plan.KWC, receive=False, spam_sort=True), [HEADER, "discard;"]),
    "autoreply": (RuleSet(address="a@b.jp", plan=Plan.KWC, autoreply=Autoreply('Away "until" 5\\6 $HOME ${x}')), [
        HEADER, f'require ["duplicate", "envelope", "vacation", "variables", "{METER_EXTENSION}"];', 'set "dollar" "$";',
        'if allof (exists "X-Spam-Checker-Version", not header :is "X-Spam-Flag" "YES") {',
        *REPLY_ONCE_A_DAY_WITHIN_THE_HOUR, '        vacation :days 1 "Away \\"until\\" 5\\\\6 ${dollar}HOME ${dollar}{x}";',
        *END_REPLY]),
    "autoreply with the original": (RuleSet(address="a@b.jp", plan=Plan.SV_BASIC, autoreply=Autoreply("Away", True)), [
        HEADER, 'require ["duplicate", "envelope", "extracttext", "foreverypart", "mime", "regex", "vacation", '
                f'"variables", "{METER_EXTENSION}"];', 'set "dollar" "$";',
        'if allof (exists "X-Spam-Checker-Version", not header :is "X-Spam-Flag" "YES") {', '  set "original" "";',
        '  if header :regex "Authentication-Results" '
        '"^[^;]+;[[:space:]]*spf=pass[[:space:]]+([(][^)]*[)][[:space:]]*)?smtp[.]mailfrom=" {', "    foreverypart {",
        '      if header :mime :contenttype "Content-Type" "text/plain" {', '        extracttext :first 2000 "original";',
        "        break;", "      }", "    }", "  }", *REPLY_ONCE_A_DAY_WITHIN_THE_HOUR, '        vacation :days 1 "Away', "",
        '${original}";', *END_REPLY]),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_each_feature_compiles_to_its_golden_script(name):
    rules, lines = GOLDEN[name]
    script = compile_sieve(rules)

    assert script == "\n".join([*lines, ""])
    assert sievec_accepts(script)


def test_every_feature_together_compiles_in_delivery_order():
    """Ensure tag, reply and filing combine: the subject is tagged before filing, spam gets no reply."""
    rules = RuleSet(address="a@b.jp", plan=Plan.KWC, spam_tag=True, spam_sort=True, autoreply=Autoreply("Away"))
    script = compile_sieve(rules)

    assert script.index("addheader :last") < script.index("vacation :days") < script.index("fileinto \"Junk\"")
    assert sievec_accepts(script)
    assert "discard" in compile_sieve(RuleSet(address="a@b.jp", plan=Plan.KWC, spam_tag=True, receive=False,
                                              autoreply=Autoreply("Away")))


def skeleton(script: str) -> list[str]:
    """The script's tokens outside quoted strings and comments, each string as one STRING token."""
    tokens, i = [], 0
    while i < len(script):
        ch = script[i]
        if ch == '"':
            i += 1
            while script[i] != '"':
                i += 2 if script[i] == "\\" else 1
            tokens.append("STRING")
        elif ch == "#":
            i = script.index("\n", i)
            continue
        elif not ch.isspace():
            tokens.append(ch)
        i += 1
    return tokens


hostile = st.lists(st.sampled_from(['"', "\\", "$", "{", "}", ";", "\n", "#", "/*", "*/", "text:", ".", "${1}",
                                    "discard", "あ", "😀", " ", "a"]), min_size=1, max_size=30).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile, include_original=st.booleans())
def test_no_autoreply_text_changes_what_the_script_does(text, include_original):
    """Ensure any text stays one string: the script has the same shape as with a plain text, and
    Dovecot compiles it."""
    plan = Plan.SV_BASIC
    script = compile_sieve(RuleSet(address="a@b.jp", plan=plan, spam_tag=True, autoreply=Autoreply(text, include_original)))
    plain = compile_sieve(RuleSet(address="a@b.jp", plan=plan, spam_tag=True, autoreply=Autoreply("x", include_original)))

    assert skeleton(script) == skeleton(plain)
    assert expanded(vacation_reason(script), include_original) == text
    assert sievec_accepts(script)


def vacation_reason(script: str) -> str:
    """The reason string of the vacation command, unescaped as a Sieve parser reads it."""
    start = script.index('vacation :days 1 "') + len('vacation :days 1 "')
    raw, i = [], start
    while script[i] != '"':
        if script[i] == "\\":
            i += 1
        raw.append(script[i])
        i += 1
    return "".join(raw)


def expanded(reason: str, include_original: bool) -> str:
    """What the variables extension makes of it at delivery: only ${dollar} (and the quoted original)
    may be variable references; expansions are not expanded again."""
    if include_original:
        assert reason.endswith("\n\n${original}")
        reason = reason[: -len("\n\n${original}")]
    parts = reason.split("${dollar}")
    assert all("${" not in part for part in parts), reason
    return "$".join(parts)
