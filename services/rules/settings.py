"""Rules service settings (environment variables, case-insensitive)."""

from pydantic import Field, SecretStr, field_validator

from services.rules.domain.sieve import FORWARD_DOMAIN, OUTBOUND_PER_HOUR
from shared.settings import ServiceSettings, refuse_placeholder


class RulesSettings(ServiceSettings):
    mongodb_db: str = "mailss_rules"
    work_prefetch: int = Field(default=4, ge=1, le=100)
    """deployments this process runs at once (versioned scripts keep concurrent ones of an account safe)"""
    dovecot_sieve_socket: str = "/srv/dovecot/services/sieve"
    """Dovecot's ManageSieve for the services (a Unix socket): the master user logs in nowhere else"""
    dovecot_master_user: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    dovecot_master_password: SecretStr
    sieve_connections_kept: int = Field(default=128, ge=0, le=1000)
    """ManageSieve connections kept open after a deployment (one per account, least recently used go)"""
    sieve_connection_idle_s: float = Field(default=60.0, ge=0)
    postfix_forward_map: str = Field(pattern=r"^lmdb:/")
    """Postfix's forwarding table (virtual_alias_maps), written with postmap"""
    postfix_config_dir: str = "/etc/postfix"
    forward_domain: str = Field(default=FORWARD_DOMAIN, pattern=r"^[a-z0-9.-]+$")
    """the internal domain of the forwarding addresses (Postfix: virtual_alias_domains)"""
    srs_domain: str = Field(default="srs.mailss.localhost", pattern=r"^[a-z0-9.-]+$")
    """where forwarded copies' SRS senders live (postsrsd): no forward may go there either"""
    outbound_per_hour: int = Field(default=OUTBOUND_PER_HOUR, ge=1, le=1_000_000)
    """messages an account may send out an hour (forwarded copies, autoreplies); more are kept in its
    mailbox. Written into each script: a change reaches an account with its next deployment"""
    outbound_meter_dir: str = "/srv/dovecot/outbound"
    """the outbound meters the mail server keeps (read for GetRules)"""
    reconcile_interval_s: float = Field(default=60.0, gt=0)
    """how often accounts whose mail server is behind are deployed again (and once soon after start)"""

    @field_validator("dovecot_master_password")
    @classmethod
    def _real_secret(cls, value: SecretStr) -> SecretStr:
        refuse_placeholder(value.get_secret_value())
        return value
