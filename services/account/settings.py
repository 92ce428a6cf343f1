"""Account service settings (environment variables, case-insensitive)."""

from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from argon2 import PasswordHasher
from pydantic import Field, SecretStr, field_validator, model_validator

from services.account.application.first_admin import FirstAdmin
from services.account.domain.account import LockoutPolicy
from services.account.domain.addresses import ADMIN_LOGIN_PATTERN
from shared.auth import is_pair
from shared.settings import ServiceSettings, refuse_placeholder


class AccountSettings(ServiceSettings):
    mongodb_db: str = "mailss_account"
    session_private_key: SecretStr
    session_lifetime_minutes: int = Field(default=60, ge=1, le=24 * 60)
    dovecot_passwd_dir: Path
    dovecot_mail_dir: Path
    """where the account homes are, as Dovecot sees them (the same path here: it goes into the passwd lines)"""
    deletion_sweep_interval_s: float = Field(default=300.0, gt=0)
    """backstop for deletions whose completion was lost (a crash between the delete and its follow)"""
    home_sweep_interval_s: float = Field(default=3600.0, gt=0)
    orphan_home_grace_s: float = Field(default=86_400.0, ge=0)
    """a home that belongs to no account is removed once untouched this long"""
    passwd_reconcile_interval_s: float = Field(default=300.0, gt=0)
    tombstone_retention_days: float = Field(default=30.0, gt=0)
    """how long a deleted account's tombstone (and so its replay records) is kept"""
    tombstone_sweep_interval_s: float = Field(default=3600.0, gt=0)
    """how often every passwd bucket is compared with the database (besides at start and after a failed write)"""
    lockout_max_failures: int = Field(default=5, ge=1)
    lockout_window_minutes: int = Field(default=15, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    unknown_login_memory: int = Field(default=10_000, ge=100)
    """how many logins that do not exist keep a lockout state (in memory, the oldest forgotten first)"""
    mail_policy_api_key: SecretStr | None = None
    """the key Dovecot's auth policy requests carry; without it mail logins have no guessing limit"""
    mail_policy_host: str = "127.0.0.1"
    mail_policy_port: int = Field(default=10180, ge=1, le=65535)
    postfix_map_host: str = "127.0.0.1"
    postfix_map_port: int = Field(default=10181, ge=1, le=65535)
    """where Postfix asks which domains are hosted and which addresses exist (socketmap)"""
    mail_lockout_max_failures: int = Field(default=10, ge=1)
    """failed mail logins of one address within the window that lock it"""
    mail_source_max_failures: int = Field(default=50, ge=1)
    """failed mail logins from one source within the window that lock it"""
    mail_lockout_window_minutes: int = Field(default=15, ge=1)
    mail_lockout_minutes: int = Field(default=15, ge=1)
    mail_unlimited_sources: tuple[IPv4Network | IPv6Network, ...] = ()
    """sources never locked as a whole (each address still is). None by default: our services log in as
    the master user (never limited), and loopback is every local user's, not ours alone (Dovecot
    believes nobody's IMAP ID about the client's address)"""
    mail_guessing_memory: int = Field(default=100_000, ge=100)
    """addresses and sources whose mail-login failures are kept (in memory, the oldest forgotten first)"""
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19_456, ge=8_192)
    argon2_parallelism: int = Field(default=1, ge=1)
    bootstrap_admin_login: str | None = Field(default=None, pattern=ADMIN_LOGIN_PATTERN)
    bootstrap_admin_password: SecretStr | None = None
    bootstrap_admin_domains: tuple[str, ...] = ()

    @field_validator("dovecot_mail_dir")
    @classmethod
    def _plain_absolute_path(cls, value: Path) -> Path:
        if not value.is_absolute() or ":" in str(value) or ".." in value.parts:
            raise ValueError("DOVECOT_MAIL_DIR must be an absolute path without ':' or '..' (it goes into passwd lines)")
        return value

    @field_validator("session_private_key", "bootstrap_admin_password", "mail_policy_api_key")
    @classmethod
    def _real_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            refuse_placeholder(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _keys_are_a_pair(self) -> "AccountSettings":
        try:
            paired = is_pair(self.session_private_key.get_secret_value(), self.session_public_key)
        except ValueError:
            raise ValueError("SESSION_PRIVATE_KEY and SESSION_PUBLIC_KEY must be Ed25519 keys (base64url)") from None
        if not paired:
            raise ValueError("SESSION_PUBLIC_KEY is not the public key of SESSION_PRIVATE_KEY: "
                             "every service would refuse the tokens this one signs")
        return self

    @property
    def first_admin(self) -> FirstAdmin | None:
        login, password = self.bootstrap_admin_login, self.bootstrap_admin_password
        if not (login and password):
            return None
        domains = frozenset(d.lower() for d in self.bootstrap_admin_domains)
        return FirstAdmin(login=login.lower(), password=password.get_secret_value(), domains=domains)

    @property
    def tombstone_retention(self) -> timedelta:
        return timedelta(days=self.tombstone_retention_days)

    @property
    def argon2(self) -> PasswordHasher:
        """[choice] OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): Dovecot verifies every IMAP login too."""
        return PasswordHasher(time_cost=self.argon2_time_cost, memory_cost=self.argon2_memory_kib,
                              parallelism=self.argon2_parallelism)

    def mail_lockout(self, max_failures: int) -> LockoutPolicy:
        return LockoutPolicy(max_failures=max_failures, window=timedelta(minutes=self.mail_lockout_window_minutes),
                             lock_for=timedelta(minutes=self.mail_lockout_minutes))

    @property
    def lockout(self) -> LockoutPolicy:
        return LockoutPolicy(
            max_failures=self.lockout_max_failures,
            window=timedelta(minutes=self.lockout_window_minutes),
            lock_for=timedelta(minutes=self.lockout_minutes),
        )
