"""Gateway settings (environment variables, case-insensitive)."""

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import TelemetrySettings, refuse_placeholder


class GatewaySettings(TelemetrySettings):
    """With the services' telemetry settings (OTEL_EXPORTER...): a request's span is its trace's root."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    amqp_url: SecretStr
    """the broker user `gateway`'s: it may only send commands"""
    session_public_key: str = Field(min_length=40)
    """to read who a session is for (the services still decide what it may do)"""
    gateway_form_secret: SecretStr = Field(min_length=32)
    """signs the forms' CSRF tokens and the sign-in form's nonce (scripts/secrets.sh makes it)"""
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=10080, ge=1, le=65535)
    gateway_command_timeout_s: float = Field(default=30.0, gt=0)
    gateway_sign_in_attempts: int = Field(default=10, ge=1, le=1000)
    """failed sign-ins per login in GATEWAY_SIGN_IN_WINDOW_S, on this instance"""
    gateway_sign_in_attempts_per_client: int = Field(default=100, ge=1, le=100_000)
    """failed sign-ins per client address (many people may share an office's) in the same window"""
    gateway_sign_in_window_s: float = Field(default=300.0, gt=0)
    gateway_forwarded_allow_ips: str = ""
    """the proxy (its address) whose X-Forwarded-For names the client, whose failed sign-ins are counted by
    it; empty: no proxy, the connection's own address counts (scripts/start.sh)"""
    gateway_hsts: bool = False
    """Strict-Transport-Security: only behind a real certificate (on a self-signed one it locks users out)"""

    @field_validator("session_public_key")
    @classmethod
    def _not_placeholder(cls, value: str) -> str:
        return refuse_placeholder(value)

    @field_validator("gateway_form_secret")
    @classmethod
    def _key_not_placeholder(cls, value: SecretStr) -> SecretStr:
        refuse_placeholder(value.get_secret_value())
        return value
