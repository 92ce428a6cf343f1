"""An in-memory stand-in for the services behind the gateway: answers as they would, records what
was asked (the gateway's unit tests check the pages, not the services' rules)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.auth import TokenIssuer, generate_keypair, load_private_key
from shared.contracts.base import Accepted, AnonymousCommand, Command, FieldError, Rejected

PRIVATE_KEY, PUBLIC_KEY = generate_keypair()
ISSUER = TokenIssuer(load_private_key(PRIVATE_KEY), timedelta(hours=1))
USER = "taro@example.jp"
ADMIN = "admin"
PASSWORDS = {USER: "Correct-Horse-9", ADMIN: "Admin-Password-1"}


def token_for(subject: str) -> str:
    role = "admin" if subject == ADMIN else "user"
    domains = frozenset({"example.jp", "example.com"}) if role == "admin" else frozenset()
    return ISSUER.issue(subject=subject, role=role, domains=domains, now=datetime.now(UTC))[0]


@dataclass
class FakeServices:
    asked: list[Command | AnonymousCommand] = field(default_factory=list)
    refuse_with: Rejected | None = None

    async def ask(self, service: str, command: Command | AnonymousCommand) -> Accepted | Rejected:
        self.asked.append(command)
        if self.refuse_with is not None:
            return self.refuse_with
        answer = getattr(self, f"_{type(command).__name__}", None)
        return answer(command) if answer else Accepted(command_id=command.message_id)

    def _Login(self, command: Any) -> Accepted | Rejected:
        if PASSWORDS.get(command.login) != command.password.get_secret_value():
            return Rejected(code="invalid_credentials", message="no")
        token = token_for(command.login)
        role = "admin" if command.login == ADMIN else "user"
        return Accepted(result={"token": token, "subject": command.login, "role": role,
                                "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})

    def _GetAccount(self, command: Any) -> Accepted:
        return Accepted(result={"address": command.address, "plan": "business-standard", "quota_mb": 1024,
                                "comment": "sales", "usage": {"bytes": 5 * 1024 * 1024, "messages": 12},
                                "created_at": "2026-12-01T09:00:00+00:00"})

    def _ChangePassword(self, command: Any) -> Accepted | Rejected:
        if len(command.new_password.get_secret_value()) < 12:
            return Rejected(code="validation_failed", message="policy", errors=(
                FieldError(field="new_password", code="too_short", message="at least 12"),))
        return Accepted()
