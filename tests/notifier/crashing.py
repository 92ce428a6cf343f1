"""The notifier as a test needs it to fail: the process dies right after a mail is handed over and
before it is recorded (`python -m tests.notifier.crashing`), to show the redelivered item sends it at
most once more, as the same mail. Production code has no such switch: only this composition wires it."""

import os
from dataclasses import replace
from functools import partial

from services.notifier.entrypoint import SPEC, compose
from shared.messaging.service import run_service


def _die() -> None:
    os._exit(9)


if __name__ == "__main__":
    run_service(replace(SPEC, compose=partial(compose, after_send=_die)))
