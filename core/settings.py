"""The one typed settings object, read from the environment (DESIGN.md §3).

Every variable may instead be given as ``<NAME>_FILE`` pointing at a file holding the
value (Docker/Kubernetes secrets). Nothing else in the code reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import StartupError


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class MqttTarget:
    """A parsed ``COLDCHAIN_MQTT_URL``: mqtt://user:pass@host:port or mqtts:// for TLS.

    The query parameter ``protocol=3.1.1`` selects MQTT 3.1.1 for brokers without v5
    (the embedded ``amqtt`` fallback); MQTT v5 is the default.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"scheme must be mqtt:// or mqtts://, got {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise ValueError("host is missing")
        self.url = url
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname
        self.port = parts.port or (8883 if self.tls else 1883)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        protocol = parse_qs(parts.query).get("protocol", ["5"])[0]
        if protocol not in ("5", "3.1.1"):
            raise ValueError(f"protocol must be 5 or 3.1.1, got {protocol!r}")
        self.mqtt_v5 = protocol == "5"

    def redacted(self) -> str:
        """The URL without its password, safe for logs and error messages."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


class _FileSecretsSource(PydanticBaseSettingsSource):
    """Reads ``NAME_FILE`` for every setting whose variable ``NAME`` is unset."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        alias = field.validation_alias
        name = alias if isinstance(alias, str) else field_name.upper()
        path = os.environ.get(f"{name}_FILE")
        if not path or name in os.environ:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as exc:
            raise StartupError(
                f"{name}_FILE={path}: cannot read the file ({exc.strerror})"
            ) from exc

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


class Settings(BaseSettings):
    """Configuration of every ``coldchain`` process."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str | None = Field(None, validation_alias="COLDCHAIN_DATABASE_URL")
    mqtt_url: str | None = Field(None, validation_alias="COLDCHAIN_MQTT_URL")
    topic_prefix: str = Field("coldchain/v1", validation_alias="COLDCHAIN_TOPIC_PREFIX")
    public_url: str = Field("http://127.0.0.1:8000", validation_alias="COLDCHAIN_PUBLIC_URL")
    # Base of the staff links in pages (alerts point at the shipment's dashboard page).
    dashboard_url: str = Field("http://127.0.0.1:8050", validation_alias="COLDCHAIN_DASHBOARD_URL")
    secret_key: SecretStr | None = Field(None, validation_alias="COLDCHAIN_SECRET_KEY")
    environment: Environment = Field(Environment.DEVELOPMENT, validation_alias="COLDCHAIN_ENV")
    log_level: str = Field("INFO", validation_alias="COLDCHAIN_LOG_LEVEL")
    log_format: str = Field("text", validation_alias="COLDCHAIN_LOG_FORMAT")
    data_dir: Path = Field(Path(".coldchain"), validation_alias="COLDCHAIN_DATA_DIR")
    # Raster tiles for the dashboard map; empty disables them (positions still render).
    map_tile_url: str | None = Field(
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png", validation_alias="COLDCHAIN_MAP_TILE_URL"
    )
    # Physician links (issue 7): receipt and follow-up links, and who to call when one fails.
    support_contact: str = Field(
        "the shipment team (reply to the SMS you received)",
        validation_alias="COLDCHAIN_SUPPORT_CONTACT",
        min_length=1,
        max_length=200,
    )
    receipt_link_ttl_hours: int = Field(
        168, validation_alias="COLDCHAIN_RECEIPT_LINK_TTL_HOURS", ge=1, le=24 * 60
    )
    receipt_confirm_within_hours: int = Field(
        24, validation_alias="COLDCHAIN_RECEIPT_CONFIRM_WITHIN_HOURS", ge=1, le=24 * 30
    )
    followup_after_hours: float = Field(
        48, validation_alias="COLDCHAIN_FOLLOWUP_AFTER_HOURS", gt=0, le=24 * 60
    )
    ae_serious_report_days: int = Field(
        15, validation_alias="COLDCHAIN_AE_SERIOUS_REPORT_DAYS", ge=1, le=365
    )
    ae_nonserious_report_days: int = Field(
        90, validation_alias="COLDCHAIN_AE_NONSERIOUS_REPORT_DAYS", ge=1, le=365
    )
    ae_reminder_days: int = Field(3, validation_alias="COLDCHAIN_AE_REMINDER_DAYS", ge=0, le=60)
    # Addresses (IPs or CIDR networks, comma-separated) whose X-Forwarded-For the API trusts:
    # the reverse proxy in front of it. Production refuses "*" (any client could forge it).
    trusted_proxies: str = Field("127.0.0.1,::1", validation_alias="COLDCHAIN_TRUSTED_PROXIES")
    twilio_account_sid: str | None = Field(None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(None, validation_alias="TWILIO_AUTH_TOKEN")
    twilio_from_number: str | None = Field(None, validation_alias="TWILIO_FROM_NUMBER")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSecretsSource(settings_cls)

    @field_validator(
        "database_url",
        "mqtt_url",
        "secret_key",
        "twilio_account_sid",
        "twilio_auth_token",
        "twilio_from_number",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """``VAR=`` (as compose and .env files write it) means unset, not an empty value."""
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value is not None:
            MqttTarget(value)
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _check_topic_prefix(cls, value: str) -> str:
        if not value or any(ch in value for ch in "+#") or value.startswith("/"):
            raise ValueError("must be a plain topic path without wildcards, e.g. coldchain/v1")
        return value.rstrip("/")

    @field_validator("public_url", "dashboard_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        if value not in ("text", "json"):
            raise ValueError("must be text or json")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if entries == ["*"]:
            return "*"
        if not entries:
            raise ValueError("give at least one IP address or network, e.g. 127.0.0.1")
        for entry in entries:
            try:
                # strict, as uvicorn parses it: 10.0.0.1/8 would silently match nothing.
                ipaddress.ip_network(entry, strict=True)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 172.30.80.1 or "
                    '10.0.0.0/8); "*" trusts every client and is allowed only alone'
                ) from None
        return ",".join(entries)

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if len(key) < 32:
                raise ValueError(
                    "COLDCHAIN_SECRET_KEY must be at least 32 characters "
                    "when COLDCHAIN_ENV=production"
                )
            if not self.public_url.startswith("https://"):
                raise ValueError(
                    "COLDCHAIN_PUBLIC_URL must be https:// when COLDCHAIN_ENV=production"
                )
            if self.trusted_proxies == "*":
                raise ValueError(
                    'COLDCHAIN_TRUSTED_PROXIES must not be "*" when COLDCHAIN_ENV=production: '
                    "any client could then choose its own address (rate limits, audit "
                    "client_ip); give the reverse proxy's address"
                )
        twilio = [self.twilio_account_sid, self.twilio_auth_token, self.twilio_from_number]
        if any(twilio) and not all(twilio):
            raise ValueError(
                "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER must be set together"
            )
        return self

    @property
    def mqtt(self) -> MqttTarget:
        if self.mqtt_url is None:
            raise StartupError(
                "COLDCHAIN_MQTT_URL is not set: give the broker as mqtt://user:pass@host:port "
                "(or run `coldchain demo`, which starts a local broker)"
            )
        return MqttTarget(self.mqtt_url)

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise StartupError(
                "COLDCHAIN_DATABASE_URL is not set: give it as postgresql://user@host:5432/dbname "
                "(or run `coldchain demo`, which starts a local database)"
            )
        return self.database_url

    @property
    def twilio_enabled(self) -> bool:
        return self.twilio_account_sid is not None


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; a bad variable becomes a StartupError naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if error["loc"] else message)
        raise StartupError("invalid configuration — " + "; ".join(problems)) from exc
