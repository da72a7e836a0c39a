"""Settings from environment variables (`KASSA_*`) and an optional TOML file (`KASSA_CONFIG`).

Environment variables win over the file. Bad values fail at start with a message naming the
setting, never later.
"""

from __future__ import annotations

import os
import secrets
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

import limits
from limits.storage import storage_from_string
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kassa.compat.servebase.settings import PaymentSettings


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KASSA_", extra="forbid", frozen=True)

    database_url: str = "sqlite+aiosqlite:///./kassa.db"
    secret_key: str | None = Field(default=None, repr=False)
    secret_key_file: Path = Path("kassa-secret.key")
    # Retired server keys: still open sealed secrets and verify refund links, never seal or sign
    # (JSON array in the environment; `kassa secrets rotate`, docs/production.md).
    old_secret_keys: list[str] = Field(default_factory=list, repr=False)

    @field_validator("old_secret_keys")
    @classmethod
    def _check_old_secrets(cls, value: list[str]) -> list[str]:
        for number, key in enumerate(value, 1):
            if len(key) < 32:
                raise ValueError(f"key #{number} must be at least 32 characters, like KASSA_SECRET_KEY")
        return value

    base_url: str = "http://127.0.0.1:8000"
    admin_token: str | None = Field(default=None, repr=False)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    log_format: Literal["text", "json"] = "text"
    # /metrics (Prometheus): answered only with `Authorization: Bearer <metrics_token>`; unset, /metrics
    # is off on the API port (`kassa worker --metrics-port` serves the worker's on a port of its own).
    metrics_token: str | None = Field(default=None, repr=False, min_length=16)
    # The reverse proxies whose X-Forwarded-For/-Proto are believed (uvicorn's forwarded_allow_ips:
    # "127.0.0.1", a comma-separated list, or "*"); unset, the peer address is the client.
    forwarded_allow_ips: str | None = None
    # Requests a client may make, in `limits` notation ("100/minute", "10/second;300/minute"); see
    # api/rate_limits.py and docs/production.md. An empty string switches a limit off.
    rate_limit_orders: str = "50/second;1000/minute"  # order creation, per API key
    rate_limit_pages: str = "120/minute"  # checkout and refund pages, per client address
    rate_limit_polls: str = "600/minute"  # public status polls, per client address
    dashboard_session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30
    )  # a dashboard sign-in lasts this long
    rate_limit_storage: str = "memory://"  # per process; "redis://host:6379" shares counts between them
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    run_worker: bool = True  # run the worker inside `kassa serve`
    worker_interval: float = Field(default=1.0, gt=0, le=60)
    db_pool_size: int = Field(default=40, ge=1, le=400)
    cache_seconds: float = Field(default=2.0, ge=0, le=60)  # hot-path lookups; see services/ttl_cache.py
    long_poll_max_ms: int = Field(default=120_000, ge=0, le=600_000)
    idempotency_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    # Exchange rates: {"primary": "static"|"coingecko"|"kraken", "fallbacks": [...], "spread_bps": 0,
    # "static": {"XMR/USD": "150.00"}}. The default is an empty static table: offline, fiat-only.
    rates: dict[str, Any] = Field(default_factory=lambda: {"primary": "static", "static": {}})
    rate_max_age: int = Field(default=300, ge=5, le=86400)  # seconds; never quote from an older rate
    quote_lifetime: int = Field(default=900, ge=30, le=30 * 86400)  # seconds a quote holds at most
    # Events, webhooks and callbacks.
    event_retention_days: int = Field(default=30, ge=1, le=3650)
    allow_private_webhooks: bool = False  # deliver to loopback/private addresses (development, tests)
    webhook_concurrency: int = Field(default=32, ge=1, le=1000)
    webhook_per_target: int = Field(default=4, ge=1, le=100)  # in-flight deliveries per endpoint
    webhook_timeout: float = Field(default=15.0, gt=0, le=60)
    webhook_lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    webhook_disable_after_hours: float = Field(default=120.0, gt=0)  # failing this long: disabled
    # Email (no SMTP host: emails are recorded and logged, not sent).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_tls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    mail_from: str = "Kassa <kassa@localhost>"
    # Defaults for new merchants.
    default_invoice_lifetime: int = Field(default=900, ge=60, le=30 * 86400)
    default_confirmations: int = Field(default=1, ge=0, le=1000)
    default_monitoring_window: int = Field(default=86400, ge=60)
    refund_link_days: int = Field(default=7, ge=1, le=90)  # how long a customer's refund link works
    payout_fee_bps: int = Field(default=0, ge=0, le=10_000)  # the operator's fee on payouts (docs/payouts.md)
    # @servebase/payment's front (docs/compat/servebase.md): its `payment` section, as in its seed.
    payment: PaymentSettings | None = None

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                "(e.g. postgresql+asyncpg://user:pass@127.0.0.1:5432/kassa)"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://pay.example.com")
        return value.rstrip("/")

    @field_validator("rate_limit_orders", "rate_limit_pages", "rate_limit_polls")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        if value.strip():
            try:
                limits.parse_many(value)
            except ValueError:
                raise ValueError(
                    "must be a rate such as 100/minute or 10/second;300/minute, or empty"
                ) from None
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_rate_storage(cls, value: str) -> str:
        try:
            storage_from_string(value if value.startswith("async+") else f"async+{value}")
        except Exception as exc:  # limits' ConfigurationError: unknown scheme, missing driver
            raise ValueError(
                f"must be a `limits` storage URI such as memory:// or redis://host:6379 ({exc})"
            ) from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("must be at least 32 characters (try: openssl rand -hex 32)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))

    def resolved_secret_key(self) -> str:
        """The server key; created once in `secret_key_file` (mode 0600) when not configured."""
        if self.secret_key:
            return self.secret_key
        path = self.secret_key_file
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the file named by KASSA_CONFIG: top-level keys are setting names without the prefix."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        name = os.environ.get("KASSA_CONFIG")
        if not name:
            return {}
        path = Path(name)
        try:
            return tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"KASSA_CONFIG: no such file {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"KASSA_CONFIG: {path} is not valid TOML: {exc}") from None


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"KASSA_{name.upper()}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
