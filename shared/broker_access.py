"""Who may do what on the broker: one user per service, per client and for the health check, each
with the least it needs, derived from the registry; applied by the operator with the broker's
admin user (the management API for users, permissions and policies; AMQP for the shared topology).

- A client publishes only to `commands` and reads only its own direct reply-to (which needs no
  permission). It cannot declare a queue, so it can bind nothing to anything.
- A service configures and reads only `<service>.*` (its queues and exchanges), publishes to
  `events` only under its own routing-key prefix (topic permissions), to its own exchanges, to the
  default exchange (its replies to direct reply-to; the kit sets aside anything arriving in one of
  its queues through the default exchange), and to `commands` only when the registry says it is a
  client of another service. It binds to `events` only the keys of the services it reacts to.
- Nobody but the operator binds to `commands`, so nobody but the account service reads account
  commands. The health check may only connect (a passive queue declare needs no permission).
- `guest` is deleted (scripts/stack.sh); the admin's password never reaches a service.

    python -m shared.broker_access provision [--vhost /]
    python -m shared.broker_access url <principal> [--vhost /]
"""

import argparse
import asyncio
import base64
import json
import os
import re
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika

from shared.registry import FRONTS, SERVICES, ServiceEntry
from shared.topology import COMMANDS, EVENTS, declare_shared

ADMIN = "admin"
HEALTH = "health"
CLIENTS = ("mailctl", *FRONTS)
"""principals that only send commands: mailctl and the web panel"""
USER_PREFIX = "mailss-"
DEFAULT_SECRETS = Path(__file__).resolve().parent.parent / ".run" / "secrets" / "broker"

DLQ_MAX_LENGTH = 100_000
QUEUE_MAX_LENGTH = 1_000_000
POLICIES: dict[str, dict[str, Any]] = {
    "mailss-dead-letters": {"pattern": r"\.dlq$", "apply-to": "queues", "priority": 10,
                            "definition": {"max-length": DLQ_MAX_LENGTH, "overflow": "reject-publish"}},
    "mailss-consumed": {"pattern": r"^[a-z0-9-]+\.(commands\.[0-9]+|events|work\.[a-z0-9-]+)$", "apply-to": "queues",
                        "priority": 5, "definition": {"max-length": QUEUE_MAX_LENGTH}},
}
"""Lengths as policies, not queue arguments: changing one needs no queue redeclared. A full
dead-letter queue refuses what is set aside; the consumer keeps the message and says so."""


def user_of(principal: str) -> str:
    return USER_PREFIX + principal


def may_send(user: str | None, command: str) -> bool:
    """Whether a broker user may send a client command of this type: a client (mailctl, the gateway) or
    the operator any; a service only those its registry entry names; anyone else none."""
    principal = user.removeprefix(USER_PREFIX) if user and user.startswith(USER_PREFIX) else None
    if principal in (*CLIENTS, ADMIN):
        return True
    entry = SERVICES.get(principal or "")
    return entry is not None and command in entry.sends


@dataclass(frozen=True)
class Grant:
    principal: str
    configure: str = "^$"
    write: str = "^$"
    read: str = "^$"
    topic_write: str = "^$"
    """routing keys it may publish to `events`"""
    topic_read: str = "^$"
    """binding keys it may bind on `events`"""

    @property
    def user(self) -> str:
        return user_of(self.principal)


def _one_of(*names: str) -> str:
    return "^(" + "|".join(names) + ")$"


def service_grant(entry: ServiceEntry) -> Grant:
    own = re.escape(entry.name) + r"\..*"
    writes = [own, re.escape("amq.default"), EVENTS, *([COMMANDS] if entry.commands_to else [])]
    reads = [own, *([EVENTS] if entry.reacts_to else [])]
    reacts = "^(" + "|".join(re.escape(s) + r"\." for s in entry.reacts_to) + ")" if entry.reacts_to else "^$"
    return Grant(principal=entry.name, configure="^" + re.escape(entry.name) + r"\.", write=_one_of(*writes),
                 read=_one_of(*reads), topic_write="^" + re.escape(entry.name) + r"\.", topic_read=reacts)


def grants(services: Iterable[ServiceEntry]) -> list[Grant]:
    return [*(service_grant(e) for e in services), *(Grant(principal=c, write=_one_of(COMMANDS)) for c in CLIENTS),
            Grant(principal=HEALTH)]


@dataclass(frozen=True)
class Broker:
    """Where the broker is, and where each user's password is kept (one file each, mode 600)."""

    host: str = "127.0.0.1"
    amqp_port: int = 5672
    management_port: int = 15672
    secrets: Path = DEFAULT_SECRETS

    @classmethod
    def from_env(cls) -> "Broker":
        return cls(host=os.environ.get("RABBITMQ_HOST", "127.0.0.1"),
                   amqp_port=int(os.environ.get("RABBITMQ_AMQP_PORT", "5672")),
                   management_port=int(os.environ.get("RABBITMQ_MANAGEMENT_PORT", "15672")),
                   secrets=Path(os.environ.get("BROKER_SECRETS_DIR", str(DEFAULT_SECRETS))))

    def password(self, principal: str) -> str:
        """BROKER_PASSWORD_<PRINCIPAL> (compose), or made once and kept in its file (local stack)."""
        if given := os.environ.get(f"BROKER_PASSWORD_{principal.upper().replace('-', '_')}"):
            return given
        path = self.secrets / user_of(principal)
        if not path.exists():
            self.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def url(self, principal: str, vhost: str = "/") -> str:
        return (f"amqp://{quote(user_of(principal), safe='')}:{quote(self.password(principal), safe='')}"
                f"@{self.host}:{self.amqp_port}/{quote(vhost, safe='')}")

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        credentials = base64.b64encode(f"{user_of(ADMIN)}:{self.password(ADMIN)}".encode()).decode()
        request = urllib.request.Request(
            f"http://{self.host}:{self.management_port}/api/{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def add_vhost(self, vhost: str) -> None:
        self._api("PUT", f"vhosts/{quote(vhost, safe='')}")
        self._grant_admin(vhost)

    def delete_vhost(self, vhost: str) -> None:
        self._api("DELETE", f"vhosts/{quote(vhost, safe='')}")

    def set_policy(self, vhost: str, name: str, policy: dict[str, Any]) -> None:
        self._api("PUT", f"policies/{quote(vhost, safe='')}/{name}", policy)

    def delete_policy(self, vhost: str, name: str) -> None:
        self._api("DELETE", f"policies/{quote(vhost, safe='')}/{name}")

    def queue(self, vhost: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._api("GET", f"queues/{quote(vhost, safe='')}/{quote(name, safe='')}")
        return found

    def _grant_admin(self, vhost: str) -> None:
        self._api("PUT", f"permissions/{quote(vhost, safe='')}/{user_of(ADMIN)}",
                  {"configure": ".*", "write": ".*", "read": ".*"})

    def provision(self, vhost: str = "/", services: Sequence[ServiceEntry] = tuple(SERVICES.values())) -> None:
        """Idempotent: users, their permissions and the policies made what the registry says, queues
        left from before per-service dead-letter exchanges dropped (only when empty), and the shared
        topology declared."""
        self.grant(vhost, services)
        asyncio.run(self.declare_shared(vhost, services))

    async def provision_async(self, vhost: str, services: Sequence[ServiceEntry] = tuple(SERVICES.values())) -> None:
        await asyncio.to_thread(self.grant, vhost, services)
        await self.declare_shared(vhost, services)

    def grant(self, vhost: str, services: Sequence[ServiceEntry]) -> None:
        self._grant_admin(vhost)
        encoded = quote(vhost, safe="")
        for grant in grants(services):
            self._api("PUT", f"users/{grant.user}", {"password": self.password(grant.principal), "tags": ""})
            self._api("PUT", f"permissions/{encoded}/{grant.user}",
                      {"configure": grant.configure, "write": grant.write, "read": grant.read})
            self._api("PUT", f"topic-permissions/{encoded}/{grant.user}",
                      {"exchange": EVENTS, "write": grant.topic_write, "read": grant.topic_read})
        for name, policy in POLICIES.items():
            self.set_policy(vhost, name, policy)
        self._drop_queues_from_before(vhost, services)

    def _drop_queues_from_before(self, vhost: str, services: Sequence[ServiceEntry]) -> None:
        names = {s.name for s in services}
        for queue in self._api("GET", f"queues/{quote(vhost, safe='')}?columns=name,arguments,messages,consumers"):
            ours = queue["name"].partition(".")[0] in names
            if not ours or queue.get("arguments", {}).get("x-dead-letter-exchange") != "dlx":
                continue
            if queue.get("messages") or queue.get("consumers"):
                raise SystemExit(f"queue {queue['name']} is from before per-service dead-letter exchanges and is "
                                 "not empty or still consumed: drain it and stop its service, then provision again")
            self._api("DELETE", f"queues/{quote(vhost, safe='')}/{quote(queue['name'], safe='')}")

    async def declare_shared(self, vhost: str, services: Sequence[ServiceEntry]) -> None:
        connection = await aio_pika.connect(self.url(ADMIN, vhost))
        try:
            await declare_shared(await connection.channel(), [s.name for s in services])
        finally:
            await connection.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.broker_access")
    commands = parser.add_subparsers(dest="command", required=True)
    provision = commands.add_parser("provision", help="users, permissions, policies and shared topology")
    provision.add_argument("--vhost", default="/")
    url = commands.add_parser("url", help="the AMQP URL of one principal (a secret: for process environments)")
    url.add_argument("principal", choices=[*SERVICES, *CLIENTS, HEALTH])
    url.add_argument("--vhost", default="/")
    args = parser.parse_args(argv)
    broker = Broker.from_env()
    try:
        if args.command == "provision":
            broker.provision(args.vhost)
        else:
            sys.stdout.write(broker.url(args.principal, args.vhost) + "\n")
    except urllib.error.URLError as error:
        sys.stderr.write(f"broker management API: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

