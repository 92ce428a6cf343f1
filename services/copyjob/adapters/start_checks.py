"""A StartCopy's slow checks, on the work queue (CheckStart), never in the account's turn: the user's
own password first (the account service's VerifyPassword, counted toward the sign-in lockout), then,
only for a user who proved it, the source host's addresses (DNS, each checked). The outcome goes back
through the account's turn as OpenJob, whose reply is the StartCopy's answer."""

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.copyjob.application.handlers import host_error
from services.copyjob.application.ports import Passwords, Resolver, Vault
from services.copyjob.domain.source_host import HostRefused, parse_host
from shared.contracts.base import InternalCommand, Rejected, SharedRejected
from shared.contracts.copyjob import CheckStart, OpenJob
from shared.messaging.unit_of_work import Doc

log = logging.getLogger(__name__)
Peek = Callable[[str], Awaitable[Doc | None]]
Send = Callable[[InternalCommand], Awaitable[None]]


@dataclass(frozen=True)
class StartChecks:
    peek: Peek
    send: Send
    vault: Vault
    passwords: Passwords
    resolver: Resolver

    async def __call__(self, item: CheckStart) -> None:
        pending = ((await self.peek(item.address)) or {}).get("starting")
        if not pending or pending["job_id"] != item.job_id:
            return  # answered already (a redelivery), or another start took its place
        try:
            refusal, addresses = await self._checked(item)
        except Exception:  # never a start left without its answer (the client waits, the place is held)
            log.exception("the checks of a copy's start for job %s failed", item.job_id)
            refusal, addresses = SharedRejected(code="unavailable", message="the start could not be checked; try again"), []
        await self.send(OpenJob(message_id=uuid.uuid5(uuid.NAMESPACE_URL, f"open-job:{item.message_id}"),
                                address=item.address, job_id=item.job_id, addresses=addresses, refusal=refusal,
                                answers=item.requester))

    async def _checked(self, item: CheckStart) -> tuple[Rejected | None, list[str]]:
        asked = json.loads(self.vault.open(item.sealed))
        verdict = await self.passwords.verify(asked["token"], item.address, asked["password"])
        if isinstance(verdict, Rejected):
            return verdict, []
        try:
            return None, [str(a) for a in await self.resolver.addresses(parse_host(item.source_host))]
        except HostRefused as refused:
            return SharedRejected(code="validation_failed", message=str(refused), errors=(host_error(refused),)), []
