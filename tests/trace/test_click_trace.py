"""A click on the real panel is one trace down to the mail server: the gateway's request span (its own
process) is the root of AddForwarding, and of RulesChanged, DeployRules, the ManageSieve PUTSCRIPT and
RulesApplied in the rules service. (A copy started on the page: tests/gateway/integration/test_mail_pages.py.)"""

import pytest

from shared.client import CommandClient
from tests.gateway.visitor import Visitor, field
from tests.rules.mail_world import outside, rules_account
from tests.support import ADMIN_LOGIN, ADMIN_PASSWORD, FrontProcess, exported_text
from tests.trace.clicks import click_trace

pytestmark = pytest.mark.integration


async def test_adding_a_forward_on_the_page_is_one_trace_to_managesieve(
        gateway: FrontProcess, client: CommandClient, admin_token: str, rules_service, spans_dir) -> None:
    address = await rules_account(client, admin_token)
    admin = Visitor(gateway.url)
    admin.sign_in(ADMIN_LOGIN, ADMIN_PASSWORD)
    path = f"/accounts/{address}/forwarding/new"
    token = field(admin.get(path).text, "form_token")
    reply = admin.post(path, {"form_token": token, "condition": "all", "destination": outside(), "action": "add"})
    assert reply.status_code == 303, reply.text

    click, found = await click_trace(spans_dir, "POST /accounts/", "AddForwarding", "RulesChanged", "DeployRules",
                                     "ManageSieve PUTSCRIPT", "RulesApplied")
    added = found.one("AddForwarding", **{"mailss.account": address})
    assert found.ancestors(added)[-1] == click["name"], "the request span is the command's root"
    sieve = found.one("ManageSieve PUTSCRIPT", **{"mailss.account": address})
    assert "AddForwarding" in found.ancestors(sieve) and found.ancestors(sieve)[-1] == click["name"]
    assert ADMIN_PASSWORD not in exported_text(spans_dir) and admin.cookies["__Host-session"] not in exported_text(spans_dir)
