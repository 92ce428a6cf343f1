"""Dovecot's auth policy protocol over HTTP, answered from MailGuessingLimit.

Dovecot POSTs `?command=allow` before it verifies a password (answer `{"status": 0}` to go on,
`-1` to refuse) and `?command=report` with `success` afterwards. The request carries the key
named in `auth_policy_server_api_header`; anything else is refused. One account-service instance
serves the port; another one that finds it taken tries again every RETRY_S, so it takes over when
the first goes (the counters start afresh there).
"""

import asyncio
import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.account.application.mail_guessing import MailGuessingLimit, MailLoginAttempt
from services.account.domain.guessing import FailureCounters, KnownGood
from services.account.settings import AccountSettings
from shared.listening import listen_when_free

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
MAX_BODY = 8192

Short = Annotated[str, Field(max_length=512)]


class PolicyRequest(BaseModel):
    """The attributes deploy/dovecot/dovecot.conf.in asks Dovecot to send (auth_policy_request_attributes)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    login: Short
    login_user: Short = ""
    """set while a master-user login is being checked (`address*master`)"""
    master: Short = ""
    """set once a master-user login succeeded"""
    pwhash: Short
    remote: Short = ""
    success: bool | None = None
    policy_reject: bool = False

    def attempt(self) -> MailLoginAttempt:
        return MailLoginAttempt(address=self.login.lower(), fingerprint=self.pwhash, source=self.remote,
                                through_master=bool(self.login_user or self.master))


ALLOW, REFUSE = {"status": 0, "msg": ""}, {"status": -1, "msg": "Authentication failed."}


class PolicyServer:
    def __init__(self, limit: MailGuessingLimit, *, host: str, port: int, api_key: str,
                 clock: Callable[[], datetime]) -> None:
        self._limit, self._host, self._port, self._api_key, self._clock = limit, host, port, api_key, clock

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/", self._answer)
        return app

    async def run(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            await listen_when_free(lambda: web.TCPSite(runner, self._host, self._port).start(),
                                   what="Dovecot's auth policy", host=self._host, port=self._port)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    async def _answer(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get(API_KEY_HEADER, "").encode(), self._api_key.encode()):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            body = PolicyRequest.model_validate_json(await request.read())
        except ValidationError:
            return web.json_response({"error": "malformed request"}, status=400)
        command = request.query.get("command")
        if command == "allow":
            return web.json_response(ALLOW if self._limit.allows(body.attempt(), self._clock()) else REFUSE)
        if command == "report":
            self._report(body)
            return web.json_response(ALLOW)
        return web.json_response({"error": "unknown command"}, status=400)

    def _report(self, body: PolicyRequest) -> None:
        if body.policy_reject:  # refused before any password check: nothing was tried
            return
        if body.success:
            self._limit.succeeded(body.attempt())
        else:
            self._limit.failed(body.attempt(), self._clock())


def policy_server_for(settings: AccountSettings) -> PolicyServer | None:
    """None (and a warning) without MAIL_POLICY_API_KEY: then Dovecot lets every login through."""
    if settings.mail_policy_api_key is None:
        log.warning("MAIL_POLICY_API_KEY is not set: mail logins have no guessing limit")
        return None
    limit = MailGuessingLimit(
        per_address=FailureCounters(settings.mail_lockout(settings.mail_lockout_max_failures),
                                    max_keys=settings.mail_guessing_memory),
        per_source=FailureCounters(settings.mail_lockout(settings.mail_source_max_failures),
                                   max_keys=settings.mail_guessing_memory),
        known_good=KnownGood(max_keys=settings.mail_guessing_memory),
        unlimited_sources=settings.mail_unlimited_sources,
    )
    return PolicyServer(limit, host=settings.mail_policy_host, port=settings.mail_policy_port,
                        api_key=settings.mail_policy_api_key.get_secret_value(), clock=partial(datetime.now, UTC))
