"""What every refusal a service gives must hold to (importable as tests.answer_codes): its codes are
its contract's, its params are the ones the contract documents, and its English message says no
number a client could not word from those params."""

import re
from types import ModuleType

from shared.contracts import base
from shared.contracts.base import FieldError, Rejected

WORDED_AS_NAMES = ("0-9", "ISO-2022-JP")
"""numbers a message holds as part of a name, not a limit"""


def numbers_beyond_params(message: str, params: dict[str, int | str]) -> set[str]:
    """Numbers the message says that no param holds (a param's text, e.g. a code point, says its own)."""
    for text in (*(v for v in params.values() if isinstance(v, str)), *WORDED_AS_NAMES):
        message = message.replace(text, "")
    return set(re.findall(r"\d+", message)) - {str(v) for v in params.values() if isinstance(v, int)}


def check_field_error(error: FieldError, contract: ModuleType) -> None:
    """Ensure `error` is one `contract` documents, params and all."""
    assert error.code in contract.FIELD_CODES, error
    assert sorted(error.params) == sorted(contract.FIELD_PARAMS[error.code]), error
    assert not numbers_beyond_params(error.message, error.params), error


def check_rejected(reply: Rejected, contract: ModuleType) -> None:
    """Ensure `reply` is one `contract` documents: its field errors are the contract's own, or the
    kit's shared ones when the message itself did not match (`invalid_message`)."""
    assert reply.code in contract.REJECT_CODES, reply
    for error in reply.errors:
        check_field_error(error, base if reply.code == "invalid_message" else contract)
