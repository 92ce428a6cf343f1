"""Notifier settings (environment variables, case-insensitive)."""

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from shared.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    mongodb_db: str = "mailss_notifier"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=10589, ge=1, le=65535)
    """the stack's Postfix, on its listener for the services' own mail, which relays it on"""
    smtp_username: str = "notifier"
    smtp_password: SecretStr | None = None
    """the notifier's SMTP AUTH login there (scripts/stack.sh makes it); none: send without one
    (compose, where Postfix trusts the notifier's container by its address)"""
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    mail_from: str = "noreply@example.jp"
    brand: str = Field(default="CPI", min_length=1, max_length=64)
    faq_url: str = "https://www.cpi.ad.jp/support/faq/3661/"
    language: Literal["ja", "en"] = "ja"
    security_notice: bool = True
    """mail the account's own address when its password changes"""
    retry_for_s: float = Field(default=86400.0, gt=0)
    """a temporary refusal is tried again for this long, then the notification fails"""
    retry_first_pause_s: float = Field(default=30.0, gt=0)
    """the pause after the first temporary refusal; it doubles, up to an hour"""
    retry_sweep_s: float = Field(default=15.0, gt=0)
    message_id_domain: str = "mailss.invalid"

    @field_validator("mail_from", "brand", "faq_url", "message_id_domain")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError("must be one line: it goes into a mail header or body line")
        return value
