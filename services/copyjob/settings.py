"""Copy job service settings (environment variables, case-insensitive)."""

import ipaddress

from pydantic import Field, SecretStr, field_validator

from shared.settings import ServiceSettings, refuse_placeholder


class CopyJobSettings(ServiceSettings):
    mongodb_db: str = "mailss_copyjob"
    copy_secret_key: SecretStr
    """Fernet key (urlsafe base64 of 32 bytes) sealing source passwords at rest"""
    allowed_source_networks: list[str] = Field(default_factory=list)
    """networks a source may be in although private or loopback (tests: ["127.0.0.1/32"])"""
    allow_plain_sources: bool = False
    """plain IMAP to a source (no TLS): only for tests and trusted networks"""
    source_ca_file: str | None = None
    """CA bundle for sources' certificates (default: the system's)"""
    source_timeout_s: float = Field(default=30.0, gt=0)
    """how long an answer may stand still (a source that stops sending, mid-answer or before it)"""
    step_attempts: int = Field(default=5, ge=1)
    """tries of a copy step after a lost connection, a stalled answer or an error it may get over;
    then the job fails with the reason"""
    step_deadline_s: float = Field(default=1200.0, gt=0)
    """a step's tries together (under the 25 minutes a work item may take): a source that drips its
    answer slowly enough to never stand still is still cut off"""
    retry_pause_s: float = Field(default=2.0, gt=0)
    """before a step's second try; doubling, at most a minute"""
    max_folders: int = Field(default=2000, gt=0)
    """a source listing more folders fails the job (too_many_folders)"""
    job_max_bytes: int = Field(default=200 * 1024**3, gt=0)
    """what one job copies at most (also into a mailbox without quota): then it fails (byte_limit),
    what it copied stays, and a new job goes on from there"""
    max_message_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    """SPEC: messages over 100 MB are skipped and counted"""
    chunk_messages: int = Field(default=2000, gt=0)
    chunk_bytes: int = Field(default=1024 * 1024 * 1024, gt=0)
    """a copy step takes at most this much of a folder, then checkpoints (far below the broker's
    consumer timeout at any rate a source is likely to serve)"""
    purge_batch: int = Field(default=2000, gt=0)
    """UIDs a purge flags and expunges per command pair (a progress report between two)"""
    retention_period_s: int = Field(default=86400, gt=0)
    """one retention pass per account per period"""
    retention_spread_s: int = Field(default=86400, ge=0)
    """accounts' passes spread over this much of each period (at most the period)"""
    retention_sweep_s: float = Field(default=60.0, gt=0)
    """how often an instance looks for passes due"""
    retention_batch: int = Field(default=500, gt=0)
    """messages per MOVE or expunge of a pass: a big INBOX is many short commands"""
    retention_clock_shift_days: int = Field(default=0, ge=0)
    """tests and drills only: retention acts as if this many days later"""
    progress_interval_s: float = Field(default=2.0, gt=0)
    """a copy step reports how far it is at most this often (GetJob, the progress bar, JobProgress)"""
    dovecot_imap_socket: str = "/srv/dovecot/services/imap"
    """Dovecot's IMAP for the services (a Unix socket): the master user logs in nowhere else"""
    dovecot_master_user: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    dovecot_master_password: SecretStr

    @field_validator("copy_secret_key", "dovecot_master_password")
    @classmethod
    def _real_secret(cls, value: SecretStr) -> SecretStr:
        refuse_placeholder(value.get_secret_value())
        return value

    @field_validator("allowed_source_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network)
        return value
