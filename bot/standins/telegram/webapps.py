"""Mini Apps (Web Apps) as Telegram takes them: the URL a ``web_app`` button or the menu button opens
(``WebAppInfo.url``, "an HTTPS URL"), checked and normalized as the Bot API server checks it, and the
menu button methods, ``setChatMenuButton`` and ``getChatMenuButton``, on
:attr:`FakeBotApi.menu_buttons <bot.standins.telegram.chats.FakeBotApi.menu_buttons>`.

Telegram's own wording is kept: ``inline keyboard button Web App URL 'http://x.example' is invalid:
Only HTTPS links are allowed``, ``menu button Web App URL '' is invalid: URL host is empty``,
``can't parse menu button: MenuButton has unsupported type``, ``menu button text must be
non-empty``, ``invalid chat_id specified``, ``user not found``.

Two departures, both this project's: plain ``http://`` is accepted for ``localhost`` and
``127.0.0.1`` (Telegram's test environment takes any ``http://``; its production refuses it), and
``localhost`` is accepted though its name has no dot (Telegram answers ``Wrong HTTP URL`` for a
host without one, test environment included: a Mini App must be reached as ``127.0.0.1`` or by a
dotted name there). And one stricter rule: a menu button's text may have at most 64 characters
(the Bot API documents no limit; Telegram's MTProto layer answers ``BUTTON_TEXT_INVALID`` for a
text it refuses).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Final

from bot.standins.telegram.values import bad_request

if TYPE_CHECKING:
    from bot.standins.telegram.chats import FakeBotApi

LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1"})
"""Hosts a Web App may be reached at over plain ``http://`` (this project's test setups)."""

MAX_MENU_BUTTON_TEXT: Final = 64

_HOST_SAFE: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_!$,~*'();&+=")


class _Invalid(ValueError):
    """Why Telegram's link check refuses a URL (the text after ``is invalid:``)."""


def _check_part(part: str, name: str, *, allow_colon: bool) -> None:
    i = 0
    while i < len(part):
        c = part[i]
        if c.lower() in _HOST_SAFE or (allow_colon and c == ":") or ord(c) >= 128:
            i += 1
        elif c == "%":
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", part[i + 1 : i + 3]):
                raise _Invalid(f"Wrong percent-encoded symbol in URL {name}")
            i += 3
        else:
            raise _Invalid(f"Disallowed character in URL {name}")


def _normalized(url: str) -> str:
    """``url`` as Telegram stores a Web App link (scheme and host in lower case, ``/`` for an empty
    path), or :class:`_Invalid` with Telegram's reason."""
    if re.match(r"(?i)(tg|ton|tonsite):", url):
        raise _Invalid("Only HTTPS links are allowed")
    scheme, rest = "http", url
    if found := re.match(r"([^:/?#@\[\]]*)://", url):
        scheme, rest = found.group(1).lower(), url[found.end() :]
        if scheme not in ("http", "https"):
            raise _Invalid("Unsupported URL protocol")
    authority = re.match(r"[^/?#]*", rest).group()  # type: ignore[union-attr]  # always matches
    query = rest[len(authority) :]
    userinfo, _, host_port = authority.rpartition("@")
    host, port = host_port, ""
    if (colon := host_port.rfind(":")) > host_port.rfind("]"):
        given = host_port[colon + 1 :]
        host, port = host_port[:colon], given.lstrip("0") or given[:1]
        if not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) <= 65535:
            raise _Invalid("Wrong port number specified in the URL")
    host = host.lower()
    if not host:
        raise _Invalid("URL host is empty")
    if host == ".":
        raise _Invalid("Host is invalid")
    ipv6 = host.startswith("[") and host.endswith("]")
    if not ipv6:
        _check_part(host, "host", allow_colon=False)
        _check_part(userinfo, "userinfo", allow_colon=True)
    if scheme != "https" and host not in LOCAL_HOSTS:
        raise _Invalid("Only HTTPS links are allowed")
    if "." not in host and not ipv6 and host not in LOCAL_HOSTS:
        raise _Invalid("Wrong HTTP URL")
    query = query.rstrip()
    query = ("" if query.startswith("/") else "/") + query
    query = "".join(f"%{ord(c):02X}" if ord(c) <= 0x20 else c for c in query)
    return f"{scheme}://{userinfo + '@' if userinfo else ''}{host}{':' + port if port else ''}{query}"


def web_app_url(url: str, what: str) -> str:
    """The Web App ``url`` as Telegram stores it; 400 ``<what> Web App URL '<url>' is invalid: <why>``
    (``what``: ``inline keyboard button`` or ``menu button``) if Telegram would refuse it."""
    try:
        return _normalized(url)
    except _Invalid as why:
        raise bad_request(f"{what} Web App URL '{url}' is invalid: {why}") from None


def string_field(found: dict[str, Any], name: str, where: str) -> str:
    """A required string field of a JSON object (numbers taken as their text, as Telegram does)."""
    if name not in found:
        raise bad_request(f"{where}: Can't find field \"{name}\"")
    value = found[name]
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)
    raise bad_request(f'{where}: Field "{name}" must be of type String')


def web_app_info(button: dict[str, Any], where: str) -> str:
    """The ``url`` of a button's ``web_app`` object, unchecked; refused as Telegram refuses a
    ``web_app`` that is no object or has no ``url``."""
    info = button["web_app"]
    if not isinstance(info, dict):
        raise bad_request(f'{where}: Field "web_app" must be of type Object')
    return string_field(info, "url", where)


# -- the menu button ----------------------------------------------------------------------------

_PARSE: Final = "can't parse menu button"


def _menu_button(raw: Any) -> dict[str, Any]:
    """The ``menu_button`` parameter as read before anything else (shape only; Telegram checks the
    text and the URL after the chat)."""
    if raw is None or raw == "":
        return {"type": "default"}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise bad_request("can't parse menu button JSON object") from None
    if not isinstance(raw, dict):
        raise bad_request(f"{_PARSE}: MenuButton must be an Object")
    kind = string_field(raw, "type", _PARSE)
    if kind in ("default", "commands"):
        return {"type": kind}
    if kind == "web_app":
        text = string_field(raw, "text", _PARSE)
        if "web_app" not in raw:
            raise bad_request(f"{_PARSE}: Can't find field \"web_app\"")
        return {"type": "web_app", "text": text, "web_app": {"url": web_app_info(raw, _PARSE)}}
    raise bad_request(f"{_PARSE}: MenuButton has unsupported type")


def _checked(button: dict[str, Any]) -> dict[str, Any]:
    """A ``web_app`` menu button's text and URL checked as Telegram checks them, URL normalized."""
    if button["type"] != "web_app":
        return button
    text = button["text"]
    if not text:
        raise bad_request("menu button text must be non-empty")
    if len(text) > MAX_MENU_BUTTON_TEXT:
        raise bad_request("BUTTON_TEXT_INVALID")
    return {"type": "web_app", "text": text, "web_app": {"url": web_app_url(button["web_app"]["url"], "menu button")}}


class MenuButtonMethods:
    """``setChatMenuButton`` and ``getChatMenuButton`` on :attr:`FakeBotApi.menu_buttons`: ``None``
    holds the bot's own button (for every private chat), a user id the button chosen for the chat
    with that person; an absent key is "no specific value" (``{"type": "default"}``)."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api

    def _user_id(self, raw: Any) -> int:
        """The private chat ``chat_id`` names: a person's id (no ``@username``, no group), and one
        the bot knows (a chat with them, or a message or a tap from them)."""
        user_id = 0
        if isinstance(raw, int) and not isinstance(raw, bool):
            user_id = raw
        elif isinstance(raw, str) and re.fullmatch(r"\s*\d+\s*", raw):
            user_id = int(raw)
        if user_id <= 0:
            raise bad_request("invalid chat_id specified")
        if not self.api.knows_user(user_id):
            raise bad_request("user not found")
        return user_id

    async def set_chat_menu_button(self, params: dict[str, Any]) -> bool:
        """Telegram reads the button first, then the chat, then checks the text and URL. Without
        ``chat_id``, ``{"type": "default"}`` (or no ``menu_button``) changes nothing, as at Telegram;
        ``{"type": "commands"}`` is how a bot goes back to its commands list."""
        button = _menu_button(params.get("menu_button"))
        chat_id = self._user_id(params.get("chat_id")) if "chat_id" in params else None
        button = _checked(button)
        if button["type"] != "default":
            self.api.menu_buttons[chat_id] = button
        elif chat_id is not None:
            self.api.menu_buttons.pop(chat_id, None)
        return True

    async def get_chat_menu_button(self, params: dict[str, Any]) -> dict[str, Any]:
        """The chat's own button (``{"type": "default"}`` if none was chosen for it), or without
        ``chat_id`` the bot's (``{"type": "commands"}`` until one is set: Telegram never answers
        "default" there)."""
        chat_id = self._user_id(params.get("chat_id")) if "chat_id" in params else None
        return self.api.menu_button(chat_id)
