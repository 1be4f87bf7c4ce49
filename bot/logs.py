"""Logging: one line per event, and no secret ever written (the bot token, ERM passwords and tokens,
the webhook secret) — a filter on the handler replaces them wherever they appear."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.config import Settings

_secrets: set[str] = set()
REDACTED = "[secret]"


def register_secret(value: str | None) -> None:
    """From now on ``value`` is replaced in every log line (ERM tokens are known only at login)."""
    if value and len(value) >= 4:
        _secrets.add(value)


class RedactSecrets(logging.Filter):
    """Replaces every registered secret in the formatted message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        cleaned = message
        for secret in _secrets:
            cleaned = cleaned.replace(secret, REDACTED)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text, record.exc_info = logging.Formatter().formatException(record.exc_info), None
        record.exc_text = _cleaned(record.exc_text)
        record.stack_info = _cleaned(record.stack_info)  # log(..., stack_info=True): frames may show values
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def _cleaned(text: str | None) -> str | None:
    for secret in _secrets if text else ():
        text = text.replace(secret, REDACTED)  # type: ignore[union-attr]
    return text


class _StoppedWithTheBot(logging.Filter):
    """APScheduler cancels a job that is running when the bot stops and logs it as an error; the
    work is in the ledger and goes on at the next start, so that is not worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def configure_logging(settings: Settings | None, *, level: int = logging.INFO) -> None:
    """Log to stderr, one line per event, secrets removed; httpx and APScheduler quiet."""
    if settings is not None:
        for secret in (settings.telegram_bot_token, settings.erm_password, settings.webhook_secret,
                       settings.mpesa_path):
            if secret is not None:
                register_secret(secret.get_secret_value())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "telegram.ext.Updater", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # "skipped: maximum number of running instances reached": a busy pump tick, by design
    logging.getLogger("apscheduler.executors.default").setLevel(logging.ERROR)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    logging.getLogger("apscheduler.executors.default").addFilter(_StoppedWithTheBot())
