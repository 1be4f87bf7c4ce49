"""Settings for tests."""

from __future__ import annotations

from bot.config import Settings, load_settings


def make_settings(**values: object) -> Settings:
    """Settings from keyword values named as the environment variables, ignoring any .env."""
    return load_settings(_env_file=None, **values)
