"""What the clients of remote services (the ERM, Omnimetic) share: one access token however many
requests need it, and the reading of what a service sends back.

:class:`SharedToken` signs in once when the token is missing or old, and again when the service
refuses it — once, however many requests noticed; the requests that waited for a sign-in that failed
fail with it, rather than each signing in again after its own timeout.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from pydantic import SecretStr, ValidationError

from bot.clock import Clock, SystemClock
from bot.logs import register_secret


class SharedToken:
    """A client's access token: kept as ``SecretStr`` and registered with the log filter; older than
    ``renew_after`` (by ``clock``) it is replaced before it is used."""

    def __init__(self, *, renew_after: timedelta | None = None, clock: Clock | None = None) -> None:
        self._renew_after, self._clock = renew_after, clock or SystemClock()
        self._value: SecretStr | None = None
        self._got_at: datetime | None = None
        self._lock = asyncio.Lock()
        self._failures = 0
        self._last_failure: Exception | None = None

    @property
    def secret(self) -> SecretStr | None:
        """The token as kept (to scrub it from what a service sends back)."""
        return self._value

    def keep(self, value: str, got_at: datetime | None = None) -> None:
        """A fresh token, asked for at ``got_at`` (now, if not said)."""
        register_secret(value)
        self._value, self._got_at = SecretStr(value), got_at or self._clock.now()

    def _fresh(self) -> str | None:
        if self._value is None or self._got_at is None:
            return None
        if self._renew_after is not None and self._clock.now() - self._got_at > self._renew_after:
            return None
        return self._value.get_secret_value()

    async def current(self, sign_in: Callable[[], Awaitable[object]]) -> str:
        """The token, ``sign_in()`` first (which calls :meth:`keep`) when it is missing or old."""
        token = self._fresh()
        if token is not None:
            return token
        failures = self._failures
        async with self._lock:
            token = self._fresh()
            if token is None:
                if self._failures != failures and self._last_failure is not None:
                    raise self._last_failure  # the sign-in they waited for failed: they fail with it
                await self._sign_in(sign_in)
                token = self._fresh()
                assert token is not None
            return token

    async def renew(self, stale: str, sign_in: Callable[[], Awaitable[object]]) -> str:
        """A new token, unless another request already got one since ``stale`` was refused."""
        async with self._lock:
            if self._value is None or self._value.get_secret_value() == stale:
                self._value = None
                await self._sign_in(sign_in)
            assert self._value is not None
            return self._value.get_secret_value()

    async def _sign_in(self, sign_in: Callable[[], Awaitable[object]]) -> None:
        try:
            await sign_in()
        except Exception as exc:
            self._failures += 1
            self._last_failure = exc
            raise


def scrub(text: str, *secrets: SecretStr | None) -> str:
    """``text`` (which a service sent back) with our own secrets in it replaced, in case it echoes them."""
    for secret in secrets:
        value = secret.get_secret_value() if secret else ""
        if value:
            text = text.replace(value, "***")
    return text


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTP(S)_PROXY``, ``ALL_PROXY``, exempted by ``NO_PROXY``,
    as httpx and PTB's own transport honour them), if any."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    return None if proxy is None or urllib.request.proxy_bypass(parts.hostname or "") else proxy


def first_error(exc: Exception) -> str:
    """The first problem pydantic found, in one line (never the value: it came from outside)."""
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    return str(exc) or type(exc).__name__


def snippet(text: str) -> str:
    """A short, single-line piece of a body (an HTML error page's title or first words)."""
    title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    plain = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    return " ".join(plain.split())[:200]
