"""What Telegram hands a Mini App it opens (core.telegram.org/bots/webapps): the launch data (``initData``)
signed with the bot's token, and the URL it opens, with the launch data, the platform and the theme in the
fragment (``#tgWebAppData=…&tgWebAppVersion=…&tgWebAppPlatform=…&tgWebAppThemeParams=…``).

Written from Telegram's documents, apart from the bot's own check (:mod:`dashboard.launch`), so that a test
signing here and checking there would catch either getting it wrong."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from bot.standins.telegram.values import TelegramUser

DARK_THEME = {"bg_color": "#17212b", "text_color": "#f5f5f5", "hint_color": "#708499", "link_color": "#6ab3f3",
              "button_color": "#5288c1", "button_text_color": "#ffffff", "secondary_bg_color": "#232e3c"}
"""A theme as Telegram's dark mode passes it (``themeParams``)."""


def launch_data(user: TelegramUser, token: str, at: datetime, **fields: str) -> str:
    """``initData`` of a Mini App opened by ``user`` at ``at``: every field, then ``hash``, the hex HMAC-SHA-256 of
    the fields sorted by name as ``name=value`` lines, keyed by HMAC-SHA-256 of the token keyed "WebAppData"."""
    given: dict[str, str] = {"query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
                             "user": json.dumps(user.to_dict(), separators=(",", ":"), ensure_ascii=False),
                             "auth_date": str(int(at.timestamp())), **fields}
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    check = "\n".join(f"{name}={given[name]}" for name in sorted(given))
    return urlencode({**given, "hash": hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()})


def mini_app_url(url: str, init_data: str, *, theme: dict[str, Any] | None = None, platform: str = "android",
                 version: str = "8.0") -> str:
    """The address Telegram opens for a ``web_app`` button or menu button whose URL is ``url``."""
    fragment = {"tgWebAppData": init_data, "tgWebAppVersion": version, "tgWebAppPlatform": platform}
    if theme is not None:
        fragment["tgWebAppThemeParams"] = json.dumps(theme)
    return url + "#" + "&".join(f"{name}={quote(value, safe='')}" for name, value in fragment.items())
