"""One settings object for every variable in product.md, read from the environment or ``.env``.

A bad value stops the program with one line naming the variable (see :func:`load_settings`);
secrets are ``SecretStr`` so that they never show in a repr, a log line or an error.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_ERM_BASE_URL = "https://api.omnivoltaic.com"
DEFAULT_ERM_GRAPHQL_URL = "https://production-omnivoltaic-graphql-api.omnivoltaic.com/graphql"
DEFAULT_OMNIMETIC_BASE_URL = "https://app.omnimetic.com/api"
MAX_STACKABLE_DAYS = 1095
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _var(name: str) -> Any:
    """Bind a field to exactly one environment variable name."""
    return AliasChoices(name)


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the variable."""


class Settings(BaseSettings):
    """Everything the bot can be told from outside; names are the environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True,
        populate_by_name=False, validate_default=True,
    )

    telegram_bot_token: SecretStr | None = Field(None, validation_alias=_var("TELEGRAM_BOT_TOKEN"))
    telegram_base_url: str = Field("https://api.telegram.org/bot", validation_alias=_var("TELEGRAM_BASE_URL"))
    erm_base_url: str = Field(DEFAULT_ERM_BASE_URL, validation_alias=_var("ERM_BASE_URL"))
    erm_api: Literal["rest", "graphql"] = Field("rest", validation_alias=_var("ERM_API"))
    """Which ERM interface the bot speaks: REST (documents 000/001) or GraphQL (documents 002/003)."""
    erm_graphql_url: str = Field(DEFAULT_ERM_GRAPHQL_URL, validation_alias=_var("ERM_GRAPHQL_URL"))
    erm_username: str | None = Field(None, validation_alias=_var("ERM_USERNAME"))
    erm_password: SecretStr | None = Field(None, validation_alias=_var("ERM_PASSWORD"))
    erm_timeout_seconds: float = Field(30.0, gt=0, le=600, validation_alias=_var("ERM_TIMEOUT_SECONDS"))
    omnimetic_base_url: str = Field(DEFAULT_OMNIMETIC_BASE_URL, validation_alias=_var("OMNIMETIC_BASE_URL"))
    omnimetic_client_id: str | None = Field(None, validation_alias=_var("OMNIMETIC_CLIENT_ID"))
    omnimetic_secret: SecretStr | None = Field(None, validation_alias=_var("OMNIMETIC_SECRET"))
    database_url: str = Field("sqlite:///paygbot.db", validation_alias=_var("DATABASE_URL"))
    managers: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias=_var("PAYGBOT_MANAGERS")
    )
    timezone: str = Field("UTC", validation_alias=_var("PAYGBOT_TIMEZONE"))
    summary_time: time = Field(time(19, 0), validation_alias=_var("PAYGBOT_SUMMARY_TIME"))
    reminder_days: int = Field(2, ge=0, le=365, validation_alias=_var("PAYGBOT_REMINDER_DAYS"))
    min_gap_seconds: float = Field(6.0, ge=0, le=3600, validation_alias=_var("PAYGBOT_MIN_GAP_SECONDS"))
    daily_code_limit: int = Field(10, ge=1, le=1000, validation_alias=_var("PAYGBOT_DAILY_CODE_LIMIT"))
    max_stacked_days: int = Field(
        MAX_STACKABLE_DAYS, ge=1, le=MAX_STACKABLE_DAYS, validation_alias=_var("PAYGBOT_MAX_STACKED_DAYS")
    )
    http_port: int = Field(8080, ge=0, le=65535, validation_alias=_var("PAYGBOT_HTTP_PORT"))
    webhook_secret: SecretStr | None = Field(None, validation_alias=_var("PAYGBOT_WEBHOOK_SECRET"))
    mpesa_path: SecretStr | None = Field(None, validation_alias=_var("PAYGBOT_MPESA_PATH"))
    telegram_webhook_url: str | None = Field(None, validation_alias=_var("TELEGRAM_WEBHOOK_URL"))
    """Set: webhook mode (Telegram POSTs updates to it, ending in /telegram); unset: long polling."""
    telegram_webhook_secret: SecretStr | None = Field(None, validation_alias=_var("TELEGRAM_WEBHOOK_SECRET"))
    """What Telegram echoes in X-Telegram-Bot-Api-Secret-Token (required with TELEGRAM_WEBHOOK_URL)."""
    public_url: str | None = Field(None, validation_alias=_var("PAYGBOT_PUBLIC_URL"))
    """Where the HTTP side is reachable from outside: ``/dashboard`` opens ``<public_url>/app``."""
    currency: str = Field("KES", validation_alias=_var("PAYGBOT_CURRENCY"))
    """The currency of a daily price set without one (a price always has a currency)."""
    unlock_when_paid: Literal["approve", "auto"] = Field("approve", validation_alias=_var("PAYGBOT_UNLOCK_WHEN_PAID"))
    """A plan paid off: ``approve`` asks the managers for the unlock (free) code, ``auto`` issues it at once."""
    phone_region: str = Field("KE", validation_alias=_var("PAYGBOT_PHONE_REGION"))
    """The country whose local numbers (0712 345 678) people type; stored numbers are international."""

    @field_validator("telegram_bot_token", "erm_username", "erm_password", "webhook_secret", "mpesa_path",
                     "omnimetic_client_id", "omnimetic_secret", "telegram_webhook_url", "telegram_webhook_secret",
                     "public_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("mpesa_path")
    @classmethod
    def _path_segment(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _PATH_SEGMENT.match(value.get_secret_value()):
            raise ValueError("must be 16 to 128 letters, digits, '-' or '_' (a secret URL path segment)")
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^\s/]+/(?:\S*/)?telegram$", value):
            raise ValueError("must be an http:// or https:// URL ending in /telegram (where the bot takes updates)")
        if info.data.get("http_port") == 0:
            raise ValueError("needs the HTTP side, and PAYGBOT_HTTP_PORT is 0")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            if info.data.get("telegram_webhook_url"):
                raise ValueError("is required with TELEGRAM_WEBHOOK_URL")
            return None
        if not _WEBHOOK_SECRET.match(value.get_secret_value()):
            raise ValueError("must be 1 to 256 letters, digits, '_' or '-' (Telegram's rule)")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """HTTPS, as Telegram opens Mini Apps only from HTTPS; plain HTTP only on this machine, to try it out."""
        if value is None:
            return None
        value = value.strip().rstrip("/")
        match = re.fullmatch(r"(?i)(https?)://([^\s/:?#@]+)(:\d{1,5})?(/[^\s?#]*)?", value)
        if match is None:
            raise ValueError("must be an https:// URL with no query (e.g. https://bot.example.com)")
        if match[1].lower() == "http" and match[2].lower() not in ("localhost", "127.0.0.1"):
            raise ValueError("must be https:// (plain http:// only for localhost or 127.0.0.1)")
        if info.data.get("http_port") == 0:
            raise ValueError("needs the HTTP side, and PAYGBOT_HTTP_PORT is 0")
        return value

    @property
    def dashboard_url(self) -> str | None:
        """The managers' dashboard as Telegram opens it (None: PAYGBOT_PUBLIC_URL is not set)."""
        return f"{self.public_url}/app" if self.public_url else None

    @field_validator("erm_api", "unlock_when_paid", mode="before")
    @classmethod
    def _api_name(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("telegram_base_url", "erm_base_url", "erm_graphql_url", "omnimetic_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("erm_base_url", "erm_graphql_url", "omnimetic_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("managers", mode="before")
    @classmethod
    def _id_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            for part in parts:
                if not re.fullmatch(r"\d{1,20}", part):
                    raise ValueError(f"{part!r} is not a numeric Telegram user id")
            return [int(part) for part in parts]
        return value

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", value.strip()):
            raise ValueError(f"{value!r} is not a currency code such as KES")
        return value.strip().upper()

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a country code such as KE, TZ or UG")
        return region

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Africa/Nairobi)") from None
        return value

    @field_validator("summary_time", mode="before")
    @classmethod
    def _hhmm(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _HHMM.match(value.strip())
            if not match:
                raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)")
            return time(int(match[1]), int(match[2]))
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The zone for days, limits and the summary."""
        return ZoneInfo(self.timezone)

    @property
    def webhook_mode(self) -> bool:
        """Telegram POSTs updates to ``/telegram`` (else: long polling)."""
        return self.telegram_webhook_url is not None

    @property
    def uses_sandbox(self) -> bool:
        """With no ERM credentials the embedded sandbox stands in for the ERM."""
        return not (self.erm_username and self.erm_password)

    @property
    def uses_omnimetic_sandbox(self) -> bool:
        """With no Omnimetic keys the embedded Omnimetic sandbox answers (and replies say so)."""
        return not (self.omnimetic_client_id and self.omnimetic_secret)


_PLAIN_MESSAGES = {
    "less_than_equal": "must be at most {le}",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "int_parsing": "must be a whole number",
    "float_parsing": "must be a number",
    "literal_error": "must be {expected}",
}


def _describe(error: Any) -> str:
    """One plain sentence for one pydantic error, never echoing the value (it may be a secret)."""
    message = _PLAIN_MESSAGES.get(error["type"])
    if message:
        return message.format(**error.get("ctx", {}))
    text = str(error["msg"])
    return text.removeprefix("Value error, ")


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, or raise :class:`ConfigError` with one line naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "configuration"
            if name in Settings.model_fields:  # a default found wrong beside another value: its variable
                name = getattr(Settings.model_fields[name].validation_alias, "choices", [name])[0]
            problems.append(f"{name}: {_describe(error)}")
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None
