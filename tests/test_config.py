"""Settings: every variable of product.md, and bad values stopping the program in one line."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings
from tests.support.cli import environment, run
from tests.support.settings import make_settings

_VARIABLES = [
    "TELEGRAM_BOT_TOKEN", "TELEGRAM_BASE_URL", "ERM_BASE_URL", "ERM_USERNAME", "ERM_PASSWORD",
    "ERM_TIMEOUT_SECONDS", "DATABASE_URL", "PAYGBOT_MANAGERS", "PAYGBOT_TIMEZONE", "PAYGBOT_SUMMARY_TIME",
    "PAYGBOT_REMINDER_DAYS", "PAYGBOT_MIN_GAP_SECONDS", "PAYGBOT_DAILY_CODE_LIMIT", "PAYGBOT_MAX_STACKED_DAYS",
    "PAYGBOT_HTTP_PORT", "PAYGBOT_PUBLIC_URL", "PAYGBOT_WEBHOOK_SECRET", "PAYGBOT_MPESA_PATH", "PAYGBOT_CURRENCY", "PAYGBOT_PHONE_REGION",
    "ERM_API", "ERM_GRAPHQL_URL", "OMNIMETIC_BASE_URL", "OMNIMETIC_CLIENT_ID", "OMNIMETIC_SECRET",
    "PAYGBOT_UNLOCK_WHEN_PAID", "TELEGRAM_WEBHOOK_URL", "TELEGRAM_WEBHOOK_SECRET",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_product_md() -> None:
    settings = load_settings()
    assert settings.telegram_bot_token is None
    assert settings.telegram_base_url == "https://api.telegram.org/bot"
    assert settings.erm_base_url == "https://api.omnivoltaic.com"
    assert settings.erm_timeout_seconds == 30
    assert settings.database_url == "sqlite:///paygbot.db"
    assert settings.managers == []
    assert settings.timezone == "UTC" and settings.summary_time == time(19, 0)
    assert (settings.reminder_days, settings.min_gap_seconds, settings.daily_code_limit) == (2, 6, 10)
    assert settings.max_stacked_days == 1095 and settings.http_port == 8080
    assert settings.webhook_secret is None and settings.uses_sandbox
    assert settings.erm_api == "rest"
    assert settings.omnimetic_base_url == "https://app.omnimetic.com/api" and settings.uses_omnimetic_sandbox
    assert settings.erm_graphql_url == "https://production-omnivoltaic-graphql-api.omnivoltaic.com/graphql"


def test_every_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "TELEGRAM_BOT_TOKEN": "123:abc", "TELEGRAM_BASE_URL": "http://127.0.0.1:8081/bot",
        "ERM_BASE_URL": "http://127.0.0.1:8090/", "ERM_USERNAME": "me@example.com", "ERM_PASSWORD": "pw",
        "ERM_TIMEOUT_SECONDS": "4.5", "DATABASE_URL": "sqlite:////tmp/x.db", "PAYGBOT_MANAGERS": "11, 22",
        "PAYGBOT_TIMEZONE": "Africa/Nairobi", "PAYGBOT_SUMMARY_TIME": "07:30", "PAYGBOT_REMINDER_DAYS": "3",
        "PAYGBOT_MIN_GAP_SECONDS": "7", "PAYGBOT_DAILY_CODE_LIMIT": "8", "PAYGBOT_MAX_STACKED_DAYS": "365",
        "PAYGBOT_HTTP_PORT": "0", "PAYGBOT_WEBHOOK_SECRET": "whsec-xyz", "ERM_API": "GraphQL",
        "ERM_GRAPHQL_URL": "http://127.0.0.1:8090/graphql/", "OMNIMETIC_BASE_URL": "http://127.0.0.1:8090/omnimetic/api",
        "OMNIMETIC_CLIENT_ID": "client-1", "OMNIMETIC_SECRET": "omni-secret-xyz",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.telegram_bot_token is not None and settings.telegram_bot_token.get_secret_value() == "123:abc"
    assert settings.erm_base_url == "http://127.0.0.1:8090" and not settings.uses_sandbox
    assert settings.managers == [11, 22] and str(settings.tz) == "Africa/Nairobi"
    assert settings.summary_time == time(7, 30) and settings.erm_timeout_seconds == 4.5
    assert (settings.reminder_days, settings.min_gap_seconds, settings.daily_code_limit) == (3, 7, 8)
    assert settings.max_stacked_days == 365 and settings.http_port == 0
    assert settings.erm_api == "graphql" and settings.erm_graphql_url == "http://127.0.0.1:8090/graphql"
    assert settings.omnimetic_base_url == "http://127.0.0.1:8090/omnimetic/api" and not settings.uses_omnimetic_sandbox
    assert "omni-secret-xyz" not in repr(settings)
    assert "123:abc" not in repr(settings) and "whsec-xyz" not in repr(settings) and "'pw'" not in repr(settings)


@pytest.mark.parametrize(("given", "dashboard"), [
    ("https://bot.example.com/", "https://bot.example.com/app"),
    ("https://example.com/paygbot", "https://example.com/paygbot/app"),
    ("http://localhost:8080", "http://localhost:8080/app"),
    ("http://127.0.0.1:9000/", "http://127.0.0.1:9000/app"),
    ("", None),
])
def test_the_public_url_says_where_the_dashboard_opens(given: str, dashboard: str | None) -> None:
    assert make_settings(PAYGBOT_PUBLIC_URL=given).dashboard_url == dashboard


def test_the_public_url_needs_the_http_side() -> None:
    with pytest.raises(ConfigError, match="PAYGBOT_PUBLIC_URL: needs the HTTP side"):
        make_settings(PAYGBOT_PUBLIC_URL="https://bot.example.com", PAYGBOT_HTTP_PORT="0")


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PAYGBOT_TIMEZONE=Africa/Lagos\nPAYGBOT_MANAGERS=5\n")
    settings = load_settings()
    assert settings.timezone == "Africa/Lagos" and settings.managers == [5]


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("PAYGBOT_TIMEZONE=Africa/Lagos\n")
    monkeypatch.setenv("PAYGBOT_TIMEZONE", "Africa/Kampala")
    assert load_settings().timezone == "Africa/Kampala"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("PAYGBOT_TIMEZONE", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("ERM_API", "soap", "ERM_API: must be 'rest' or 'graphql'"),
        ("PAYGBOT_UNLOCK_WHEN_PAID", "maybe", "PAYGBOT_UNLOCK_WHEN_PAID: must be 'approve' or 'auto'"),
        ("ERM_GRAPHQL_URL", "production-omnivoltaic-graphql-api.omnivoltaic.com", "must be an http:// or https:// URL"),
        ("PAYGBOT_MAX_STACKED_DAYS", "2000", "must be at most 1095"),
        ("PAYGBOT_MAX_STACKED_DAYS", "0", "must be at least 1"),
        ("PAYGBOT_SUMMARY_TIME", "25:00", "not a time of day as HH:MM"),
        ("PAYGBOT_SUMMARY_TIME", "7pm", "not a time of day as HH:MM"),
        ("PAYGBOT_MANAGERS", "123,bob", "'bob' is not a numeric Telegram user id"),
        ("PAYGBOT_DAILY_CODE_LIMIT", "ten", "must be a whole number"),
        ("ERM_TIMEOUT_SECONDS", "0", "must be more than 0"),
        ("PAYGBOT_HTTP_PORT", "70000", "must be at most 65535"),
        ("PAYGBOT_PUBLIC_URL", "http://bot.example.com", "PAYGBOT_PUBLIC_URL: must be https://"),
        ("PAYGBOT_PUBLIC_URL", "bot.example.com", "PAYGBOT_PUBLIC_URL: must be an https:// URL"),
        ("PAYGBOT_PUBLIC_URL", "https://bot.example.com/?x=1", "PAYGBOT_PUBLIC_URL: must be an https:// URL"),
        ("ERM_BASE_URL", "ftp://erm", "must be an http:// or https:// URL"),
        ("PAYGBOT_MPESA_PATH", "short/secret", "must be 16 to 128 letters, digits, '-' or '_'"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"bad configuration: {name}: ") and words in message
    assert "\n" not in message


def test_bad_configuration_stops_the_command_in_one_line(tmp_path: Path) -> None:
    result = run(
        "erm", "login", cwd=tmp_path,
        env={"PAYGBOT_TIMEZONE": "Nowhere/Land", "ERM_PASSWORD": "hunter2-secret", "TELEGRAM_BOT_TOKEN": "99:tok-secret"},
    )
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert lines == ["paygbot: bad configuration: PAYGBOT_TIMEZONE: unknown time zone 'Nowhere/Land' "
                     "(use an IANA name such as Africa/Nairobi)"]
    assert "Traceback" not in result.err and "secret" not in result.err + result.out


def test_settings_class_knows_every_product_variable() -> None:
    names = {
        alias for field in Settings.model_fields.values()
        for alias in getattr(field.validation_alias, "choices", [])
    }
    assert names == set(_VARIABLES)


def test_environment_helper_drops_our_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ERM_USERNAME", "someone")
    assert "ERM_USERNAME" not in environment(tmp_path)


def test_env_example_lists_every_variable_with_its_default(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "deploy" / "env.example"
    lines = [line for line in example.read_text().splitlines() if line and not line.startswith("#")]
    assigned = dict(line.split("=", 1) for line in lines)
    assert set(assigned) == set(_VARIABLES)
    (tmp_path / ".env").write_text(example.read_text())
    assert load_settings() == load_settings(_env_file=None)  # the example's values are the defaults
