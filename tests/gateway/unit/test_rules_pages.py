"""The mail settings pages against an in-memory rules service: every switch and deletion goes through its
confirmation page, the second ask when mail would be lost, the add form's "+" without a script, the
plan's differences, the refusals, and no post without the form token."""

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.auth import TokenVerifier, load_public_key
from shared.contracts.base import Accepted, Rejected
from shared.contracts.rules import (
    MAX_AUTOREPLY_WIDTH,
    MAX_DESTINATIONS,
    AddForwarding,
    DeleteAutoreply,
    RemoveForwarding,
    RulesCommand,
    RulesFieldError,
    SetAutoreply,
    SetReceive,
    SetSpamSort,
    SetSpamTag,
)
from tests.gateway.unit.conftest import field as field_value
from tests.gateway.unit.conftest import sign_in
from tests.gateway.unit.fakes import ADMIN, PASSWORDS, PUBLIC_KEY, USER, FakeServices

OTHER = "hanako@example.jp"
BASIC = "basic@example.com"
VERIFIER = TokenVerifier(load_public_key(PUBLIC_KEY))


def _rules(address: str, plan: str) -> dict[str, Any]:
    return {"address": address, "plan": plan, "version": 1, "spam_tag": False, "spam_sort": False, "receive": True,
            "autoreply": None, "forwards": [], "mail_server": {"state": "applied", "deployed_version": 1, "last_failure": None},
            "outbound": {}}


@dataclass
class FakeRules(FakeServices):
    """The rules service as the pages see it: authorizes by the token, keeps each account's rules."""

    accounts: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        USER: _rules(USER, "business-standard"), OTHER: _rules(OTHER, "kwc"), BASIC: _rules(BASIC, "sv-basic")})

    async def ask(self, service: str, command: Any) -> Accepted | Rejected:
        if service == "rules":
            self.asked.append(command)
            return self._rules_reply(command)
        return await super().ask(service, command)

    def _rules_reply(self, command: RulesCommand) -> Accepted | Rejected:
        actor = VERIFIER.verify(command.actor_token)
        if not actor.may_act_on(command.address):
            return Rejected(code="forbidden", message="not yours")
        rules = self.accounts[command.address]
        if isinstance(command, (SetSpamTag, SetSpamSort)):
            rules["spam_tag" if isinstance(command, SetSpamTag) else "spam_sort"] = command.on
        elif isinstance(command, SetReceive):
            if not command.on and not self._forwards_all(rules) and not command.accept_loss:
                return _loss()
            rules["receive"] = command.on
        elif isinstance(command, AddForwarding):
            if any("@" not in d for d in command.destinations):
                return Rejected(code="validation_failed", message="bad", errors=(RulesFieldError(
                    field="destinations", code="invalid_address", message="bad",
                    params={"address": "x", "min_length": 3, "max_length": 254, "max_local_length": 64}),))
            self._add(rules, command)
        elif isinstance(command, RemoveForwarding):
            kept = [f for f in rules["forwards"] if f["id"] != command.entry_id]
            if not rules["receive"] and self._forwards_all(rules) and not any(f["condition"] == "all" for f in kept) \
                    and not command.accept_loss:
                return _loss()
            rules["forwards"] = kept
        elif isinstance(command, SetAutoreply):
            if not command.text.strip():
                return Rejected(code="validation_failed", message="empty", errors=(
                    RulesFieldError(field="text", code="empty", message="empty"),))
            rules["autoreply"] = {"text": command.text, "include_original": command.include_original}
        elif isinstance(command, DeleteAutoreply):
            rules["autoreply"] = None
        return Accepted(result=rules)

    @staticmethod
    def _forwards_all(rules: dict[str, Any]) -> bool:
        return any(f["condition"] == "all" for f in rules["forwards"])

    @staticmethod
    def _add(rules: dict[str, Any], command: AddForwarding) -> None:
        ordered = sorted(command.destinations, key=str.lower)
        rules["version"] += 1
        if command.condition == "all":
            rules["forwards"] += [{"id": f"{rules['version']}-{n}", "condition": "all", "match": "", "destinations": [d]}
                                  for n, d in enumerate(ordered, 1)]
            rules["forwards"].sort(key=lambda f: (f["condition"] != "all", f["destinations"][0].lower()))
        else:
            rules["forwards"].append({"id": str(rules["version"]), "condition": command.condition,
                                      "match": command.match, "destinations": ordered})


def _loss() -> Rejected:
    return Rejected(code="validation_failed", message="mail would be lost", errors=(
        RulesFieldError(field="accept_loss", code="required", message="set accept_loss"),))


@pytest.fixture
def services() -> FakeRules:
    return FakeRules()


@pytest.fixture
def user(browser: TestClient) -> TestClient:
    browser.cookies.set("lang", "en")
    sign_in(browser, USER)
    return browser


def token_of(browser: TestClient, path: str) -> str:
    return field_value(browser.get(path).text, "form_token")


def post(browser: TestClient, path: str, **data: Any) -> Any:
    return browser.post(path, data={"form_token": token_of(browser, "/no-such-page"), **data})


def asked(services: FakeRules, kind: type) -> list[Any]:
    return [command for command in services.asked if isinstance(command, kind)]


def test_the_top_page_shows_every_setting_at_a_glance(user: TestClient, services: FakeRules) -> None:
    services.accounts[USER]["forwards"] = [{"id": "2-1", "condition": "all", "match": "", "destinations": ["a@example.org"]},
                                           {"id": "3", "condition": "subject", "match": "invoice",
                                            "destinations": ["b@example.org", "c@example.org"]}]
    services.accounts[USER]["mail_server"]["state"] = "pending"
    page = user.get("/").text
    for shown in ("Spam subject tag", "Spam auto-sort", "Mail receiving", "a@example.org",
                  "Subject contains “invoice”: b@example.org, c@example.org", "Not set",
                  "The latest change is being applied to the mail server."):
        assert shown in page, shown
    assert f'href="/accounts/{USER}/spam/tag/on?from=top"' in page and f'href="/accounts/{USER}/autoreply"' in page


def test_the_spam_tag_goes_on_through_its_confirmation_page(user: TestClient, services: FakeRules) -> None:
    confirm = user.get(f"/accounts/{USER}/spam/tag/on")
    assert "Set the spam subject tag to ON?" in confirm.text and not asked(services, SetSpamTag)
    reply = user.post(f"/accounts/{USER}/spam/tag/on", data={"form_token": field_value(confirm.text, "form_token")})
    assert reply.status_code == 303 and reply.headers["location"] == f"/accounts/{USER}/spam?done=spam_tag_on"
    assert [c.on for c in asked(services, SetSpamTag)] == [True]
    page = user.get(reply.headers["location"]).text
    assert "Spam subject tagging has been set to ON." in page and "100%" in page


def test_a_switch_clicked_on_the_top_page_comes_back_to_it(user: TestClient, services: FakeRules) -> None:
    confirm = user.get(f"/accounts/{USER}/spam/sort/on?from=top").text
    assert 'name="from" value="top"' in confirm
    reply = post(user, f"/accounts/{USER}/spam/sort/on", **{"from": "top"})
    assert reply.headers["location"] == "/?done=spam_sort_on" and services.accounts[USER]["spam_sort"]
    assert "Spam auto-sort has been set to ON." in user.get("/?done=spam_sort_on").text


def test_receive_off_without_forwarding_asks_again_saying_what_is_lost(user: TestClient, services: FakeRules) -> None:
    confirm = user.get(f"/accounts/{USER}/receive/off").text
    assert "Set Mail receiving to OFF?" in confirm and "Important" in confirm
    first = post(user, f"/accounts/{USER}/receive/off")
    assert first.status_code == 409 and "New mail would be kept nowhere" in first.text
    assert 'name="accept_loss" value="yes"' in first.text and services.accounts[USER]["receive"]
    second = user.post(f"/accounts/{USER}/receive/off", data={"form_token": field_value(first.text, "form_token"),
                                                             "accept_loss": field_value(first.text, "accept_loss")})
    assert second.headers["location"] == f"/accounts/{USER}/receive?done=receive_off"
    assert [c.accept_loss for c in asked(services, SetReceive)] == [False, True] and not services.accounts[USER]["receive"]


def test_the_add_form_grows_a_field_without_a_script_and_keeps_what_was_typed(user: TestClient, services: FakeRules) -> None:
    form = user.get(f"/accounts/{USER}/forwarding/new").text
    assert form.count('name="destination"') == 3 and str(MAX_DESTINATIONS) in form
    more = post(user, f"/accounts/{USER}/forwarding/new", condition="subject", match="invoice", action="more",
                destination=["z@example.org", "", "a@example.org"])
    assert more.status_code == 200 and more.text.count('name="destination"') == 4
    assert 'value="z@example.org"' in more.text and 'value="invoice"' in more.text and not asked(services, AddForwarding)
    added = post(user, f"/accounts/{USER}/forwarding/new", condition="subject", match="invoice", action="add",
                 destination=["z@example.org", "", "a@example.org", ""])
    assert added.headers["location"] == f"/accounts/{USER}/forwarding?done=forward_added"
    [command] = asked(services, AddForwarding)
    assert (command.condition, command.match, command.destinations) == ("subject", "invoice", ["z@example.org", "a@example.org"])
    listing = user.get(added.headers["location"]).text
    assert "The forwarding setting has been registered." in listing
    assert listing.index("a@example.org") < listing.index("z@example.org")


def test_a_refused_destination_is_said_next_to_the_destinations_with_the_values_kept(user: TestClient) -> None:
    reply = post(user, f"/accounts/{USER}/forwarding/new", condition="all", action="add", destination=["not-an-address"])
    assert reply.status_code == 422 and "Please enter a valid mail address." in reply.text
    assert 'value="not-an-address"' in reply.text and 'aria-invalid="true"' in reply.text


def test_forwarding_of_all_mail_is_one_row_per_destination_and_deleted_through_confirmation(
        user: TestClient, services: FakeRules) -> None:
    post(user, f"/accounts/{USER}/forwarding/new", condition="all", action="add", destination=["b@example.org", "a@example.org"])
    rows = re.findall(r"<tr>\s*<td>All mail</td>", user.get(f"/accounts/{USER}/forwarding").text)
    assert len(rows) == 2
    entry = services.accounts[USER]["forwards"][0]["id"]
    confirm = user.get(f"/accounts/{USER}/forwarding/{entry}/delete").text
    assert "Delete this forwarding setting?" in confirm and "a@example.org" in confirm
    gone = post(user, f"/accounts/{USER}/forwarding/{entry}/delete")
    assert gone.headers["location"] == f"/accounts/{USER}/forwarding?done=forward_removed"
    assert [f["destinations"] for f in services.accounts[USER]["forwards"]] == [["b@example.org"]]


def test_deleting_the_last_forward_of_all_mail_with_receive_off_asks_again(user: TestClient, services: FakeRules) -> None:
    services.accounts[USER].update(receive=False, forwards=[
        {"id": "2-1", "condition": "all", "match": "", "destinations": ["a@example.org"]}])
    first = post(user, f"/accounts/{USER}/forwarding/2-1/delete")
    assert first.status_code == 409 and "last forwarding of all mail" in first.text
    post(user, f"/accounts/{USER}/forwarding/2-1/delete", accept_loss="yes")
    assert [c.accept_loss for c in asked(services, RemoveForwarding)] == [False, True]
    assert services.accounts[USER]["forwards"] == []


def test_the_autoreply_is_set_changed_refused_and_deleted(user: TestClient, services: FakeRules) -> None:
    page = user.get(f"/accounts/{USER}/autoreply").text
    assert "Not set" in page and str(MAX_AUTOREPLY_WIDTH) in page and "〜" in page
    assert '<script src="/static/autoreply.js" defer></script>' in page and "include_original" not in page
    assert post(user, f"/accounts/{USER}/autoreply", text="Away.").headers["location"].endswith("done=autoreply_set")
    assert post(user, f"/accounts/{USER}/autoreply", text="Back Monday.").headers["location"].endswith("done=autoreply_changed")
    refused = post(user, f"/accounts/{USER}/autoreply", text="   ")
    assert refused.status_code == 422 and "Please enter this item." in refused.text
    assert services.accounts[USER]["autoreply"]["text"] == "Back Monday."
    assert "Delete the autoreply?" in user.get(f"/accounts/{USER}/autoreply/delete").text
    assert post(user, f"/accounts/{USER}/autoreply/delete").headers["location"].endswith("done=autoreply_deleted")
    assert services.accounts[USER]["autoreply"] is None


def test_sv_basic_says_pop_receiving_offers_the_original_text_and_no_auto_sort(
        browser: TestClient, services: FakeRules) -> None:
    browser.cookies.set("lang", "en")
    sign_in(browser, ADMIN)
    assert "POP receiving" in browser.get(f"/accounts/{BASIC}/receive").text
    assert "Spam auto-sort" not in browser.get(f"/accounts/{BASIC}/spam").text
    page = browser.get(f"/accounts/{BASIC}/autoreply").text
    assert 'name="include_original"' in page and "Characters that cannot be used" not in page
    post(browser, f"/accounts/{BASIC}/autoreply", text="Away.", include_original="yes")
    assert services.accounts[BASIC]["autoreply"] == {"text": "Away.", "include_original": True}
    reply = post(browser, f"/accounts/{BASIC}/receive/on")
    assert reply.headers["location"] == f"/accounts/{BASIC}/receive?done=pop_receive_on"


def test_an_admin_reaches_the_pages_from_the_account_page_and_changes_a_users_setting(
        browser: TestClient, services: FakeRules) -> None:
    browser.cookies.set("lang", "en")
    sign_in(browser, ADMIN)
    account = browser.get(f"/admin/accounts/{USER}").text
    assert f'href="/accounts/{USER}/forwarding"' in account and f'href="/accounts/{USER}/autoreply"' in account
    page = browser.get(f"/accounts/{USER}/spam").text
    assert "Back to the account" in page and f"Account: {USER}" in page
    reply = post(browser, f"/accounts/{USER}/spam/tag/on", **{"from": "top"})
    assert reply.headers["location"] == f"/accounts/{USER}/spam?done=spam_tag_on"
    assert services.accounts[USER]["spam_tag"]


@pytest.mark.parametrize("path", ["spam", "receive", "forwarding", "forwarding/new", "autoreply", "spam/tag/on"])
def test_a_user_cannot_open_anothers_settings(user: TestClient, path: str) -> None:
    reply = user.get(f"/accounts/{OTHER}/{path}")
    assert reply.status_code == 403 and "You may not do this for this account." in reply.text
    assert OTHER not in reply.text.replace(f"/accounts/{OTHER}", "")


POSTS = ["spam/tag/on", "spam/sort/off", "receive/off", "forwarding/new", "forwarding/2-1/delete", "autoreply",
         "autoreply/delete"]


@pytest.mark.parametrize("path", POSTS)
def test_no_post_is_done_without_this_sessions_form_token(user: TestClient, services: FakeRules, path: str) -> None:
    before = len(services.asked)
    for data in ({}, {"form_token": "0" * 64}):
        reply = user.post(f"/accounts/{USER}/{path}", data={**data, "text": "x", "destination": "a@example.org"})
        assert reply.status_code == 403
    assert len(services.asked) == before


def test_no_page_holds_the_session_token_or_a_password(user: TestClient) -> None:
    session = user.cookies.get("__Host-session")
    assert session
    for path in ("/", "spam", "receive", "forwarding", "forwarding/new", "autoreply", "autoreply/delete", "receive/off"):
        page = user.get(path if path == "/" else f"/accounts/{USER}/{path}").text
        assert session not in page and PASSWORDS[USER] not in page and 'type="password"' not in page


def test_every_page_is_in_japanese_by_default(browser: TestClient) -> None:
    sign_in(browser, USER)
    for path, shown in (("spam", "スパムメール件名表示"), ("receive", "メール受信"), ("forwarding", "転送設定・一覧"),
                        ("forwarding/new", "設定する"), ("autoreply", "応答文"), ("spam/tag/on", "確認")):
        assert shown in browser.get(f"/accounts/{USER}/{path}").text, path
