"""The SPF milter in compose and locally: one template, fully rendered by both, and a Postfix that
lets no sender's own SPF result through (checked statically, as tests/deploy/test_compose.py does)."""

import re
from pathlib import Path

from tests.deploy.test_compose import DEPLOY, POSTFIX_ENTRYPOINT, dockerfile_stages

TEMPLATE = DEPLOY / "spf" / "pyspf-milter.conf.in"
STACK = Path(__file__).resolve().parents[2] / "scripts" / "stack.sh"


def test_both_renderings_fill_every_token_of_the_milters_template():
    tokens = set(re.findall(r"@([A-Z_]+)@", TEMPLATE.read_text()))
    assert tokens == {"SOCKET", "PIDFILE", "USER"}
    for script in (POSTFIX_ENTRYPOINT, STACK):
        text = script.read_text()
        rendering = text[text.index('sed -e "s|@SOCKET@'):text.index("pyspf-milter.conf.in", text.index('sed -e "s|@SOCKET@'))]
        assert {token for token in tokens if f"s|@{token}@|" in rendering} == tokens, script


def test_the_postfix_image_runs_the_milter_before_postfix_and_postfix_asks_it():
    stage = dockerfile_stages()["postfix"]
    assert re.search(r"apt-get install [^;]*\bpyspf-milter;", stage) and "deploy/spf/pyspf-milter.conf.in" in stage
    entrypoint = POSTFIX_ENTRYPOINT.read_text()
    main = entrypoint[entrypoint.index("\nmain() {"):]
    assert main.index("start_spf_milter") < main.index("postfix -c")
    main_cf = (DEPLOY / "postfix" / "main.cf.in").read_text()
    assert re.search(r"^smtpd_milters = unix:@SPF_MILTER@, inet:@MILTER@$", main_cf, re.M)
    assert "milter_default_action = tempfail" in main_cf  # the milter down: senders retry, nothing passes unchecked


def test_a_senders_own_spf_results_are_dropped_before_the_milter_adds_ours():
    checks = (DEPLOY / "postfix" / "header_checks").read_text().splitlines()
    assert "/^Authentication-Results:/ IGNORE" in checks and "/^Received-SPF:/ IGNORE" in checks
