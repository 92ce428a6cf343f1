"""Every service, in one table: what starts it, what it may do on the broker and which secrets it
needs. scripts/start.sh, the test fixtures and the compose check read it; adding a service is its
folder plus one entry here.

`python -m shared.registry` prints `<name> <module>` for each service, one a line (for the shell scripts);
`python -m shared.registry fronts` the same for the processes people use (the web panel).
"""

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    module: str
    """`python -m <module>` runs it"""
    settings: str
    """`module:Class` of its settings, so tools can check an environment against it"""
    secrets: tuple[str, ...]
    """environment variables holding secrets this process (and no other) gets (shared/launch.py);
    AMQP_URL is always its own broker user's (shared/broker_access.py)"""
    commands_to: tuple[str, ...] = ()
    """services whose commands it sends as a client (broker permission on `commands`)"""
    sends: tuple[str, ...] = ()
    """the command types of those services it may send (the receiver checks the broker-verified sender):
    only what it needs, so a compromised service cannot replay a user's token as another command"""
    reacts_to: tuple[str, ...] = ()
    """services whose events it consumes"""

    @property
    def user(self) -> str:
        """The system user it runs as (scripts/stack.sh makes it; shared/launch.py becomes it)."""
        return f"mailss-{self.name}"

    @property
    def ready_queue(self) -> str:
        """A queue whose consumer shows the service is up."""
        return f"{self.name}.commands.0"


SERVICES: Mapping[str, ServiceEntry] = MappingProxyType({
    "account": ServiceEntry(
        name="account", module="services.account", settings="services.account.settings:AccountSettings",
        secrets=("AMQP_URL", "MONGODB_URL", "SESSION_PRIVATE_KEY", "BOOTSTRAP_ADMIN_PASSWORD", "MAIL_POLICY_API_KEY"),
    ),
    "rules": ServiceEntry(
        name="rules", module="services.rules", settings="services.rules.settings:RulesSettings",
        secrets=("AMQP_URL", "MONGODB_URL", "DOVECOT_MASTER_PASSWORD"), reacts_to=("account",),
    ),
    "copyjob": ServiceEntry(
        name="copyjob", module="services.copyjob", settings="services.copyjob.settings:CopyJobSettings",
        secrets=("AMQP_URL", "MONGODB_URL", "DOVECOT_MASTER_PASSWORD", "COPY_SECRET_KEY"), reacts_to=("account",),
        commands_to=("account",), sends=("VerifyPassword",),
    ),
    "notifier": ServiceEntry(
        name="notifier", module="services.notifier", settings="services.notifier.settings:NotifierSettings",
        secrets=("AMQP_URL", "MONGODB_URL", "SMTP_PASSWORD"), reacts_to=("account", "copyjob"),
    ),
})




@dataclass(frozen=True)
class FrontEntry:
    """A process people use (the web panel): a client of the services that only sends commands, as its own
    broker user (shared/broker_access.py CLIENTS), with no queue, database or secret of theirs."""

    name: str
    module: str
    settings: str
    secrets: tuple[str, ...]
    health_path: str
    """its HTTP health check, on the port its settings give"""

    @property
    def user(self) -> str:
        return f"mailss-{self.name}"


FRONTS: Mapping[str, FrontEntry] = MappingProxyType({
    "gateway": FrontEntry(
        name="gateway", module="services.gateway", settings="services.gateway.settings:GatewaySettings",
        secrets=("AMQP_URL", "GATEWAY_FORM_SECRET"), health_path="/healthz",
    ),
})


if __name__ == "__main__":
    entries = FRONTS if sys.argv[1:] == ["fronts"] else SERVICES
    sys.stdout.write("".join(f"{entry.name} {entry.module}\n" for entry in entries.values()))
