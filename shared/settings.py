"""Settings every service shares; each service extends them. Refuses missing or default secrets."""

import socket
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "guest-secret"})


class TelemetrySettings(BaseSettings):
    """Where a process's spans go (shared/telemetry.py): `file` writes JSON lines into a file of its own in
    OTEL_EXPORTER_FILE_DIR (the trace tests read them)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    otel_exporter: Literal["otlp", "console", "file", "none"] = "none"
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_file_dir: Path | None = None
    instance: str = Field(default_factory=socket.gethostname)


class ServiceSettings(TelemetrySettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    amqp_url: SecretStr
    mongodb_url: SecretStr
    mongodb_db: str
    session_public_key: str = Field(min_length=40)
    command_shards: int = Field(default=4, ge=1, le=64)
    event_prefetch: int = Field(default=32, ge=1, le=1000)
    work_prefetch: int = Field(default=1, ge=1, le=100)
    """items a worker runs at once; 1 lets other workers take the rest"""
    delivery_limit: int = Field(default=5, ge=2, le=50)
    work_lease_s: float = Field(default=6.0, ge=1.0, le=300.0)
    """how long a worker that stopped beating still holds its work item (a killed worker's item
    waits this long for another); it beats every sixth of it (shared/messaging/leases.py)"""
    outbox_sweep_interval_s: float = Field(default=30.0, gt=0)
    outbox_stale_after_s: float = Field(default=60.0, gt=0)
    ended_sessions_sweep_interval_s: float = Field(default=600.0, gt=0)
    """how often the ended sessions of tokens expired for good are dropped (shared/sessions.py)"""
    health_dir: Path = Path(tempfile.gettempdir()) / "mailss-health"
    """where the process reports its health for `python -m shared.health <service>`"""

    @field_validator("session_public_key")
    @classmethod
    def _not_placeholder(cls, value: str) -> str:
        return refuse_placeholder(value)


def refuse_placeholder(value: str) -> str:
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        raise ValueError("a real secret is required, not a placeholder")
    return value
