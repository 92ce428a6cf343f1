"""What the contracts say they can answer: every code of every contract with the params it carries,
the kit's own field errors in those terms, and replies of before params still read."""

import uuid

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.contracts import account, base, copyjob, notifier, rules
from shared.contracts.account import AccountFieldError, AccountRejected, ChangeComment, CreateAccount, RemoveHome
from shared.contracts.base import Rejected, Reply
from shared.contracts.copyjob import OpenJob, StartCopy
from shared.contracts.rules import AddForwarding
from shared.messaging.delivery import TOO_LARGE_REPLY, invalid
from tests.answer_codes import check_rejected

CONTRACTS = {"base": base, "account": account, "rules": rules, "copyjob": copyjob, "notifier": notifier}
TOKEN = {"actor_token": "token"}
ADDRESS = "taro@example.jp"
START = {**TOKEN, "address": ADDRESS, "current_password": "mine", "source_host": "imap.example.com",
         "source_password": "theirs", "notification_address": "me@example.net"}
ADD = {**TOKEN, "address": ADDRESS, "condition": "all", "destinations": ["a@example.org"]}


@pytest.mark.parametrize("contract", CONTRACTS.values(), ids=CONTRACTS.keys())
def test_every_field_code_documents_its_params(contract):
    """Ensure each contract's params table covers exactly its field codes, with names a message template can use."""
    assert len(set(contract.FIELD_CODES)) == len(contract.FIELD_CODES)
    assert set(contract.FIELD_PARAMS) == set(contract.FIELD_CODES)
    assert all(name.isidentifier() for names in contract.FIELD_PARAMS.values() for name in names)


@pytest.mark.parametrize("contract", CONTRACTS.values(), ids=CONTRACTS.keys())
def test_every_contract_answers_the_shared_reject_codes(contract):
    """Ensure each contract's reject codes hold the shared ones (the kit answers them for every service)."""
    assert set(base.REJECT_CODES) <= set(contract.REJECT_CODES)
    assert len(set(contract.REJECT_CODES)) == len(contract.REJECT_CODES)


MISMATCHES = {
    "port below 1": (StartCopy, {**START, "source_port": 0}),
    "port above 65535": (StartCopy, {**START, "source_port": 65536}),
    "comment over the transport bound": (ChangeComment, {**TOKEN, "address": ADDRESS, "comment": "x" * 1001}),
    "address too short, field missing": (CreateAccount, {**TOKEN, "address": "ab", "initial_password": "x"}),
    "no destination, unknown condition": (AddForwarding, {**ADD, "condition": "to", "destinations": []}),
    "too many destinations": (AddForwarding, {**ADD, "destinations": ["a@example.org"] * 401}),
    "a field the contract lacks": (AddForwarding, {**ADD, "bcc": "x@example.org"}),
    "a home not as made": (RemoveHome, {"address": ADDRESS, "home": "../x"}),
    "a quota as text": (CreateAccount, {**TOKEN, "address": ADDRESS, "plan": "kwc", "initial_password": "x",
                                        "quota_mb": "12"}),
}


def _mismatch(kind, body) -> Rejected:
    with pytest.raises(ValidationError) as caught:
        kind.model_validate(body)
    return invalid(caught.value)


@pytest.mark.parametrize(("kind", "body"), MISMATCHES.values(), ids=MISMATCHES.keys())
def test_a_message_that_does_not_match_its_contract_is_answered_in_shared_codes(kind, body):
    """Ensure the kit's schema refusals use the shared field codes with their documented params (limits included)."""
    check_rejected(_mismatch(kind, body), base)


def test_the_limits_a_schema_refusal_names_travel_as_params():
    """Ensure a port out of range and a list too long say their limits as params."""
    [port] = _mismatch(StartCopy, {**START, "source_port": 0}).errors
    [many] = _mismatch(AddForwarding, {**ADD, "destinations": ["a@example.org"] * 401}).errors

    assert (port.field, port.code, port.params) == ("source_port", "greater_than_equal", {"ge": 1})
    assert (many.field, many.code, many.params) == ("destinations", "too_long", {"max_length": 400, "actual_length": 401})


def test_every_shared_field_code_is_answered():
    """Ensure the shared field codes name nothing the kit never answers (the list stays true)."""
    answered = {e.code for kind, body in MISMATCHES.values() for e in _mismatch(kind, body).errors}

    assert answered | {e.code for e in TOO_LARGE_REPLY.errors} == set(base.FIELD_CODES)


def test_a_too_large_body_says_the_limit_as_a_param():
    check_rejected(TOO_LARGE_REPLY, base)


OLD_REPLY = ('{"status": "rejected", "command_id": null, "code": "validation_failed", "message": "quota must be 1..1048576 MB",'
             ' "errors": [{"field": "quota_mb", "code": "out_of_range", "message": "quota must be 1..1048576 MB"}]}')


def test_a_reply_of_before_params_still_reads():
    """Ensure a rejection without params (an older service's, or one stored before) parses, with no params."""
    reply = TypeAdapter(Reply).validate_json(OLD_REPLY)

    assert isinstance(reply, Rejected) and reply.errors[0].params == {}
    assert Rejected.model_validate({"code": "a_code_of_a_later_service", "message": "m"}).code == "a_code_of_a_later_service"


def test_a_stored_start_refusal_of_before_params_still_reads():
    """Ensure an OpenJob holding a refusal without params (staged before this version) parses."""
    opened = OpenJob.model_validate({"address": ADDRESS, "job_id": "j", "refusal": TypeAdapter(Reply).validate_json(OLD_REPLY)
                                     .model_dump(exclude={"errors": {0: {"params"}}})})

    assert opened.refusal is not None and opened.refusal.errors[0].params == {}


def test_a_typed_refusal_travels_as_any_client_reads_it():
    """Ensure a contract's own refusal serializes to the common shape, params included, and reads back the same."""
    sent = AccountRejected(command_id=uuid.uuid4(), code="validation_failed", message="quota must be 1..1048576 MB",
                           errors=(AccountFieldError(field="quota_mb", code="out_of_range", message="quota must be 1..1048576 MB",
                                                     params={"min_mb": 1, "max_mb": 1_048_576}),))

    received = TypeAdapter(Reply).validate_json(sent.model_dump_json())

    assert type(received) is Rejected and received.model_dump() == sent.model_dump()
    assert received.errors[0].params == {"min_mb": 1, "max_mb": 1_048_576}


def test_a_code_outside_the_contract_is_refused_where_it_is_built():
    """Ensure a typed refusal cannot be built with a code its contract does not name (mypy says so too)."""
    with pytest.raises(ValidationError):
        AccountFieldError(field="quota_mb", code="out_of_rang", message="m")  # type: ignore[arg-type]
