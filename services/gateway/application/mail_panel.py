"""What the mail data pages ask of the services: one command per action (copy, purge, cancel, a job's
state, its notification mails, the retention passes). The copy job service authorizes and judges
every one (an admin's copy, another's job, a purge's cancel); nothing is decided here."""

from collections.abc import Callable
from dataclasses import dataclass

from services.gateway.application.panel import Reply, ask_built
from services.gateway.application.ports import Bus
from shared.contracts.base import Command
from shared.contracts.copyjob import SERVICE as COPYJOB
from shared.contracts.copyjob import CancelJob, GetJob, GetRetention, PurgeMailbox, StartCopy
from shared.contracts.notifier import SERVICE as NOTIFIER
from shared.contracts.notifier import GetNotifications


@dataclass(frozen=True)
class CopyForm:
    """What the copy page's form says; the source address is always the account's own."""

    current_password: str
    source_host: str
    source_password: str
    notification_address: str
    source_port: int = 993
    source_security: str = "imaps"


@dataclass(frozen=True)
class MailPanel:
    bus: Bus

    async def start_copy(self, token: str, address: str, form: CopyForm) -> Reply:
        return await self._ask(COPYJOB, lambda: StartCopy(
            actor_token=token, address=address, current_password=form.current_password,
            source_host=form.source_host, source_port=form.source_port,
            source_security=form.source_security,
            source_password=form.source_password,
            notification_address=form.notification_address))

    async def purge(self, token: str, address: str) -> Reply:
        return await self._ask(COPYJOB, lambda: PurgeMailbox(actor_token=token, address=address))

    async def cancel(self, token: str, address: str, job_id: str) -> Reply:
        return await self._ask(COPYJOB, lambda: CancelJob(actor_token=token, address=address, job_id=job_id))

    async def job(self, token: str, address: str, job_id: str | None) -> Reply:
        """That job, or with None the account's running or last one."""
        return await self._ask(COPYJOB, lambda: GetJob(actor_token=token, address=address, job_id=job_id))

    async def notifications(self, token: str, address: str, job_id: str) -> Reply:
        return await self._ask(NOTIFIER, lambda: GetNotifications(actor_token=token, address=address,
                                                                         job_id=job_id))

    async def retention(self, token: str, address: str) -> Reply:
        return await self._ask(COPYJOB, lambda: GetRetention(actor_token=token, address=address))

    async def _ask(self, service: str, build: Callable[[], Command]) -> Reply:
        return await ask_built(self.bus, service, build)
