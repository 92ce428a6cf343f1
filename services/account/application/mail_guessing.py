"""The guessing limit for mail logins (IMAP, ManageSieve): Dovecot asks before it verifies a
password and reports the outcome after (its auth policy protocol). Failures are counted per
address and per source; a locked address or source is refused before any hash work.

- Logins through the master user (our own services) are never limited, and their failures are not
  counted against the address they act for.
- A mail client that keeps trying a password that once worked for the address (the previous one,
  after a change) is not guessing: its failures do not count, and it is let through a lock, so a
  phone left behind locks out neither the owner's other clients nor the owner's panel (the panel
  has its own lockout, which mail logins never touch).
- Whether the address exists makes no difference to the answers: Dovecot gives the same reply
  and the same delay either way, and the counters never look an address up.
- If the account service is down Dovecot lets logins through (its default): mail keeps working.
"""

from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network, ip_address

from services.account.domain.guessing import FailureCounters, KnownGood

Network = IPv4Network | IPv6Network


@dataclass(frozen=True)
class MailLoginAttempt:
    address: str
    fingerprint: str
    """Dovecot's keyed hash of address and password (auth_policy_hash_nonce): equal only for the same password"""
    source: str
    through_master: bool


@dataclass
class MailGuessingLimit:
    per_address: FailureCounters
    per_source: FailureCounters
    known_good: KnownGood
    unlimited_sources: tuple[Network, ...]
    """sources never locked as a whole (each address still is)"""

    def allows(self, attempt: MailLoginAttempt, now: datetime) -> bool:
        if attempt.through_master or (attempt.address, attempt.fingerprint) in self.known_good:
            return True
        if self.per_address.is_locked(attempt.address, now):
            return False
        return not (self._limits_source(attempt.source) and self.per_source.is_locked(attempt.source, now))

    def succeeded(self, attempt: MailLoginAttempt) -> None:
        if attempt.through_master:
            return
        self.known_good.add(attempt.address, attempt.fingerprint)
        self.per_address.forget(attempt.address)

    def failed(self, attempt: MailLoginAttempt, now: datetime) -> None:
        if attempt.through_master or (attempt.address, attempt.fingerprint) in self.known_good:
            return
        self.per_address.failed(attempt.address, now)
        if self._limits_source(attempt.source):
            self.per_source.failed(attempt.source, now)

    def _limits_source(self, source: str) -> bool:
        try:
            address = ip_address(source)
        except ValueError:
            return True
        return not any(address in network for network in self.unlimited_sources)
