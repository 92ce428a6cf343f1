"""Forwarding rules: every limit SPEC sets at its edge, the receive-off safety, the forwarding
addresses Postfix expands, and the Sieve block (hostile keywords stay one literal string)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.rules.domain.rules import (
    MAX_DESTINATIONS,
    MAX_RULES,
    Condition,
    Refused,
    RuleSet,
    forwarding_table,
    with_forward,
    with_receive,
    without_forward,
)
from services.rules.domain.sieve import Outside, compile_sieve
from shared.plans import Plan
from tests.rules.unit.test_sieve import sievec_accepts, skeleton

ALL, FROM, SUBJECT = Condition.ALL, Condition.FROM, Condition.SUBJECT


def rules(**fields) -> RuleSet:
    return RuleSet(address="taro@example.jp", plan=Plan.KWC, forward_token="0123456789abcdef", **fields)


def refusal(change) -> Refused:
    with pytest.raises(Refused) as caught:
        change()
    return caught.value


def codes(refused: Refused) -> list[tuple[str, str]]:
    return [(v.field, v.code) for v in refused.violations]


def destinations(n: int, start: int = 0) -> list[str]:
    return [f"d{i:03d}@example.org" for i in range(start, start + n)]


def test_all_with_several_destinations_stores_one_entry_each_in_alphabetical_order():
    changed = with_forward(rules(), ALL, "", ["zed@example.org", "Amy@Example.ORG", "bob+news@example.org"])

    assert [(f.condition, f.destinations) for f in changed.forwards] == [
        (ALL, ("Amy@example.org",)), (ALL, ("bob+news@example.org",)), (ALL, ("zed@example.org",))]
    assert changed.version == 2 and changed.all_revision == 2


def test_a_from_or_subject_rule_is_one_entry_holding_all_its_destinations():
    changed = with_forward(rules(), SUBJECT, "請求書", ["b@example.org", "a@example.org"])

    [entry] = changed.forwards
    assert (entry.condition, entry.match, entry.destinations) == (SUBJECT, "請求書", ("a@example.org", "b@example.org"))


def test_300_destinations_over_mixed_entries_are_accepted_and_301_refused():
    full = with_forward(with_forward(rules(), ALL, "", destinations(100)), FROM, "boss", destinations(150, 100))
    full = with_forward(full, SUBJECT, "x", destinations(MAX_DESTINATIONS - 250, 250))
    assert sum(len(f.destinations) for f in full.forwards) == 300

    refused = refusal(lambda: with_forward(full, ALL, "", ["one.more@example.org"]))
    assert codes(refused) == [("destinations", "too_many")]
    assert "301" in refused.violations[0].message and "300" in refused.violations[0].message


@pytest.mark.parametrize(("destination", "code"), [
    ("-rf@example.org", "invalid_address"), ("no-at-sign", "invalid_address"), ("a@b@example.org", "invalid_address"),
    ("a@example", "invalid_address"), ("a b@example.org", "invalid_address"), ("a@exa_mple.org", "invalid_address"),
    ('"quoted"@example.org', "invalid_address"), ("a,b@example.org", "invalid_address"), ("a@example.org\n", "invalid_address"),
    (".a@example.org", "invalid_address"), ("a..b@example.org", "invalid_address"), ("ｔａｒｏ@example.org", "invalid_address"),
    ("TARO@Example.JP", "own_address"), ("taro@example.jp", "own_address"),
])
def test_a_bad_destination_is_refused_naming_it(destination, code):
    refused = refusal(lambda: with_forward(rules(), ALL, "", [destination]))

    assert codes(refused) == [("destinations", code)]
    assert destination.strip() in refused.violations[0].message


def test_a_destination_appears_once_per_account_whatever_its_case():
    once = with_forward(rules(), ALL, "", ["Hanako@example.org"])

    assert codes(refusal(lambda: with_forward(once, FROM, "x", ["hanako@EXAMPLE.org"]))) == [("destinations", "duplicate")]
    assert codes(refusal(lambda: with_forward(rules(), ALL, "", ["a@example.org", "A@example.org"]))) == [
        ("destinations", "duplicate")]


def test_every_problem_of_a_request_is_named_at_once_and_nothing_changes():
    base = rules()
    refused = refusal(lambda: with_forward(base, SUBJECT, "", ["-x@example.org", "taro@example.jp"]))

    assert codes(refused) == [("match", "empty"), ("destinations", "invalid_address"), ("destinations", "own_address")]
    assert base.forwards == ()


@pytest.mark.parametrize(("condition", "match", "code"), [
    (FROM, "", "empty"), (SUBJECT, "a" * 257, "too_long"), (SUBJECT, "a\r\nBcc: x", "control_character"),
    (SUBJECT, "nul\x00", "control_character"), (ALL, "keyword", "not_allowed"),
])
def test_keywords_are_checked(condition, match, code):
    assert codes(refusal(lambda: with_forward(rules(), condition, match, ["a@example.org"]))) == [("match", code)]


def test_a_keyword_of_256_characters_with_spaces_quotes_and_symbols_is_fine():
    keyword = ('"; discard; ' + "\\ ${x} ＡＢＣ 😀 ") * 8
    keyword = keyword[:256]
    assert with_forward(rules(), SUBJECT, keyword, ["a@example.org"]).forwards[0].match == keyword


def test_receive_off_needs_a_forward_of_all_mail_or_a_confirmation():
    assert codes(refusal(lambda: with_receive(rules(), False, accept_loss=False))) == [("accept_loss", "required")]
    only_rules = with_forward(rules(), FROM, "boss", ["a@example.org"])
    assert codes(refusal(lambda: with_receive(only_rules, False, accept_loss=False))) == [("accept_loss", "required")]
    forwarding_all = with_forward(rules(), ALL, "", ["a@example.org"])
    assert with_receive(forwarding_all, False, accept_loss=False).receive is False


def test_removing_the_last_forward_of_all_mail_with_receive_off_needs_a_confirmation():
    relay = with_receive(with_forward(rules(), ALL, "", ["a@example.org", "b@example.org"]), False, accept_loss=False)
    first, second = relay.forwards

    one_left = without_forward(relay, first.id, accept_loss=False)
    assert codes(refusal(lambda: without_forward(one_left, second.id, accept_loss=False))) == [("accept_loss", "required")]
    assert without_forward(one_left, second.id, accept_loss=True).forwards == ()


def test_removing_an_unknown_entry_is_refused():
    assert codes(refusal(lambda: without_forward(rules(), "42", accept_loss=False))) == [("entry_id", "not_found")]


def test_forwarding_addresses_are_new_for_every_new_set_of_all_destinations():
    """A forwarding address never changes meaning: a worker writing an old version's table late can
    never redirect mail to destinations the user has removed since."""
    first = with_forward(rules(), ALL, "", ["a@example.org"])
    second = with_forward(first, ALL, "", ["b@example.org"])
    third = without_forward(second, second.forwards[0].id, accept_loss=False)
    rule = with_forward(third, SUBJECT, "x", ["c@example.org"])

    tables = [forwarding_table(r) for r in (first, second, third, rule)]
    assert tables[0] == {"0123456789abcdef-a2": ("a@example.org",)}
    assert tables[1] == {"0123456789abcdef-a3": ("a@example.org", "b@example.org")}
    assert tables[2] == {"0123456789abcdef-a4": ("b@example.org",)}
    assert tables[3] == {"0123456789abcdef-a4": ("b@example.org",), "0123456789abcdef-r5": ("c@example.org",)}


def test_the_forwarding_block_guards_loops_skips_spam_meters_and_keeps_a_copy():
    """Ensure each redirect asks the outbound meter first, for as many messages as its address has
    destinations, and that only the forward of all mail tells the delivery block it went out."""
    forwards = with_forward(with_forward(rules(), ALL, "", ["a@example.org", "c@example.org"]), FROM, "Boss", ["b@example.org"])
    script = compile_sieve(forwards, Outside(per_hour=40))

    assert script.splitlines()[1:] == [
        'require ["copy", "editheader", "variables", "vnd.dovecot.execute"];', 'set "dollar" "$";',
        'if header :is "X-MailSS-Forwarded-By" "0123456789abcdef" {', "  discard;", "  stop;", "}",
        'if allof (exists "X-Spam-Checker-Version", not header :is "X-Spam-Flag" "YES") {',
        '  addheader "X-MailSS-Forwarded-By" "0123456789abcdef";',
        '  if execute "mailss-outbound" ["2", "40"] {',
        '    redirect :copy "0123456789abcdef-a2@forward.mailss.invalid";', '    set "forwarded" "all";',
        "  } else {", '    set "held" "yes";', "  }",
        '  if address :all :contains :comparator "i;ascii-casemap" "From" "Boss" {',
        '    if execute "mailss-outbound" ["1", "40"] {',
        '      redirect :copy "0123456789abcdef-r3@forward.mailss.invalid";',
        "    } else {", '      set "held" "yes";', "    }", "  }", "}"]
    assert sievec_accepts(script)


def test_forwarding_with_receive_off_discards_only_what_the_forward_of_all_mail_sent():
    """Ensure receive off discards only what the forward of all mail sent on (checked, not spam), and
    nothing whose forward was held over the hour's limit (a rule's too): the rest is kept."""
    script = compile_sieve(with_receive(with_forward(rules(), ALL, "", ["a@example.org"]), False, accept_loss=False))

    assert script.index("redirect :copy") < script.rindex("discard;")
    assert script.endswith('if allof (string :is "${forwarded}" "all", string :is "${held}" "") {\n  discard;\n  stop;\n}\n')
    assert sievec_accepts(script)


def test_receive_off_with_only_rules_keeps_what_a_held_forward_did_not_send():
    script = compile_sieve(with_receive(with_forward(rules(), FROM, "Boss", ["a@example.org"]), False, accept_loss=True))

    assert script.endswith('if string :is "${held}" "" {\n  discard;\n  stop;\n}\n')
    assert sievec_accepts(script)


hostile = st.lists(st.sampled_from(['"', "\\", "$", "{", "}", ";", "#", "/*", "*/", "text:", "${1}", '"; discard; "',
                                    "あ", "Ａ", "😀", " ", "a", "*", "?", "\u200b", "İ", "K"]), min_size=1, max_size=30).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keyword=hostile, condition=st.sampled_from([FROM, SUBJECT]))
def test_no_keyword_changes_what_the_script_does(keyword, condition):
    """Ensure any keyword stays one literal string: the script has the shape it has with a plain
    keyword, the string reads back as the keyword, and Dovecot compiles it."""
    script = compile_sieve(with_forward(rules(spam_tag=True), condition, keyword, ["a@example.org"]))
    plain = compile_sieve(with_forward(rules(spam_tag=True), condition, "x", ["a@example.org"]))

    assert skeleton(script) == skeleton(plain)
    assert literal_after(script, '"i;ascii-casemap" ', 2) == keyword
    assert sievec_accepts(script)


def literal_after(script: str, marker: str, skip: int) -> str:
    """The string `skip` strings after `marker`, unescaped and with its variables expanded as at
    delivery (only ${dollar} may be a reference)."""
    i = script.index(marker) + len(marker)
    for _ in range(skip):
        i = script.index('"', i)
        raw = []
        i += 1
        while script[i] != '"':
            if script[i] == "\\":
                i += 1
            raw.append(script[i])
            i += 1
        i += 1
    text = "".join(raw)
    parts = text.split("${dollar}")
    assert all("${" not in part for part in parts), text
    return "$".join(parts)


addresses = st.builds(lambda local, domain: f"{local}@{domain}",
                      st.text(st.sampled_from(list("aZ09._%+=-'\",; \n\\$#{}*あ")), min_size=1, max_size=20),
                      st.sampled_from(["example.org", "EXAMPLE.org", "ex-ample.co.jp", "exa mple.org", "example..org", "x"]))


@settings(max_examples=200, deadline=None)
@given(destination=addresses)
def test_a_destination_is_refused_or_is_one_plain_address_that_never_reaches_the_script(destination):
    """Ensure no accepted destination can add a recipient or a field to Postfix's map line (no comma,
    space, quote or newline), and that destinations never appear in the Sieve script at all."""
    try:
        changed = with_forward(rules(), ALL, "", [destination])
    except Refused as refused:
        assert codes(refused)[0][0] == "destinations"
        return
    [stored] = changed.forwards[0].destinations
    assert set(stored) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+=-@")
    assert not stored.startswith("-") and stored.count("@") == 1
    assert stored not in compile_sieve(changed)


INTERNAL = frozenset({"forward.mailss.invalid", "srs.example.jp"})


@pytest.mark.parametrize("destination", ["abc-def@forward.mailss.invalid", "SRS0=x=y=example.org=a@srs.example.jp",
                                         "x@sub.srs.example.jp", "x@FORWARD.mailss.invalid"])
def test_a_destination_in_the_mail_systems_own_domains_is_refused(destination):
    """Ensure no forward goes to another account's forwarding address or an SRS address (handled as ours,
    past every check a forward gets)."""
    with pytest.raises(Refused) as refused:
        with_forward(rules(), Condition.ALL, "", [destination], INTERNAL)

    assert [v.code for v in refused.value.violations] == ["internal_domain"]
    assert with_forward(rules(), Condition.ALL, "", ["x@srs-example.jp"], INTERNAL).forwards  # only those domains


def test_from_and_subject_rules_are_capped_below_pigeonholes_redirect_limit():
    """Ensure at most 99 from/subject rules: with the one redirect for `all`, a delivery matching them all
    makes 100 redirects, the most Pigeonhole performs; `all` destinations are not rules and still fit."""
    full = rules()
    for n in range(MAX_RULES):
        full = with_forward(full, Condition.SUBJECT, f"k{n}", [f"d{n}@example.org"])

    with pytest.raises(Refused) as refused:
        with_forward(full, Condition.FROM, "boss", ["x@example.org"])

    assert [v.code for v in refused.value.violations] == ["too_many_rules"]
    assert len(with_forward(full, Condition.ALL, "", ["all@example.org"]).forwards) == MAX_RULES + 1
