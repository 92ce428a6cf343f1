"""The copy job service answers only what its contract names: every field code with the params the
contract documents, so a client words each refusal in its own language without its rule tables."""

import asyncio
import ipaddress

import pytest

from services.copyjob.adapters.outside import CheckedResolver
from services.copyjob.application.handlers import host_error
from services.copyjob.domain.source_host import MAX_HOST_LENGTH, HostRefused, Source, check_all, parse_host
from shared.contracts import copyjob as contract
from shared.contracts.base import Rejected
from tests.answer_codes import check_field_error, check_rejected
from tests.copyjob.unit.test_start_handler import _asked, _command, _unit

REFUSED_HOSTS = {
    "empty": lambda: parse_host(" "),
    "too long": lambda: parse_host("a" * (MAX_HOST_LENGTH + 1)),
    "not a name": lambda: parse_host("imap_server.example.com"),
    "malformed address": lambda: parse_host("999.1.1.1"),
    "private": lambda: check_all([ipaddress.ip_address("192.168.1.1")]),
    "no address": lambda: check_all([]),
    "does not resolve": lambda: asyncio.run(CheckedResolver().addresses(Source(host="nothing.invalid", literal=None))),
}


def _refusal(check) -> HostRefused:
    with pytest.raises(HostRefused) as caught:
        check()
    return caught.value


@pytest.mark.parametrize("check", REFUSED_HOSTS.values(), ids=REFUSED_HOSTS.keys())
def test_every_refused_host_is_a_field_error_the_contract_documents(check):
    """Ensure each reason a source host is refused has its own code with exactly its documented params."""
    check_field_error(host_error(_refusal(check)), contract)


def test_a_refused_start_names_every_broken_rule_in_the_contracts_terms():
    """Ensure a start with a bad notification address and a bad host is refused in the contract's codes, limits as params."""
    refused = _asked(_unit({"plan": "kwc"}), _command(source_host="999.1.1.1", notification_address="a@x, b@y"))

    assert isinstance(refused, Rejected)
    check_rejected(refused, contract)
    assert {e.code: e.params for e in refused.errors} == {
        "not_one_address": {"min_length": 1, "max_length": 254, "max_local_length": 64},
        "malformed_ip_address": {},
    }


def test_every_code_the_contract_names_is_answered():
    """Ensure the contract names no field code the copy job service never answers (the list stays true)."""
    refused = _asked(_unit({"plan": "kwc"}), _command(notification_address="-x@example.org"))
    answered = {e.code for e in refused.errors} | {_refusal(check).code for check in REFUSED_HOSTS.values()}

    assert answered == set(contract.FIELD_CODES)
