"""What Telegram checks in what a bot posts, with its own refusals: texts and captions (empty, too
long, HTML it cannot parse), inline keyboards (shape, ``callback_data`` size, URLs, Web App buttons
and where they may be), uploaded pictures and files; and the shapes it answers with (photo sizes,
file ids)."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import secrets
import struct
from typing import Any, Final

from bot.standins.telegram.html import HtmlError, parse_html
from bot.standins.telegram.values import MAX_CALLBACK_DATA, MAX_CAPTION, MAX_TEXT, UploadedFile, bad_request
from bot.standins.telegram.webapps import web_app_info, web_app_url
from bot.standins.telegram.wire import as_json

_BUTTON_URL: Final = re.compile(r"(?i)(https?|tg)://\S+")
_BUTTON_ACTIONS: Final = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)


def formatted(text: Any, params: dict[str, Any], *, caption: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """The text (or caption) as shown and its entities, after ``parse_mode``; refuses what
    Telegram refuses, and also an unescaped ``&`` or ``>`` (see :func:`parse_html`)."""
    limit, entities_key = (MAX_CAPTION, "caption_entities") if caption else (MAX_TEXT, "entities")
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    parse_mode = params.get("parse_mode")
    entities: list[dict[str, Any]] = []
    if parse_mode:
        mode = str(parse_mode).lower()
        if mode == "html":
            try:
                text, entities = parse_html(text)
            except HtmlError as error:
                raise bad_request(f"can't parse entities: {error}") from None
        elif mode not in ("markdown", "markdownv2"):
            raise bad_request("unsupported parse_mode")
        # Markdown is passed through unparsed: this project writes HTML.
    elif params.get(entities_key):
        given = as_json(params[entities_key], entities_key)
        if not isinstance(given, list):
            raise bad_request(f"can't parse {entities_key} JSON object")
        entities = given
    if not caption and not text.strip():
        raise bad_request("message text is empty")
    if len(text) > limit:
        raise bad_request("message caption is too long" if caption else "message is too long")
    return text, entities


def markup(params: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any] | None:
    """The ``reply_markup`` for a message in ``chat``, checked as Telegram checks inline keyboards:
    ``web_app`` buttons need an HTTPS URL (see :mod:`~bot.standins.telegram.webapps`) and a private
    chat (``BUTTON_TYPE_INVALID`` elsewhere, once the whole keyboard has been read)."""
    raw = params.get("reply_markup")
    if raw is None or raw == "":
        return None
    found = as_json(raw, "reply keyboard markup")
    if not isinstance(found, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in found:
        rows = found["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
        web_apps = [_check_button(button) for row in rows for button in row]
        if any(web_apps) and chat.get("type") != "private":
            raise bad_request("BUTTON_TYPE_INVALID")
    return found


def _opens_web_app(button: dict[str, Any]) -> bool:
    # Telegram takes a button's url or callback_data before its web_app.
    return "web_app" in button and not button.get("url") and not button.get("callback_data")


def _check_button(button: Any) -> bool:
    """Refuse what Telegram refuses in one inline button; whether it opens a Web App."""
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request('can\'t parse inline keyboard button: Field "text" must be of type String')
    if not _BUTTON_ACTIONS & button.keys():
        raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button and not _BUTTON_URL.fullmatch(str(button["url"])):
        raise bad_request("BUTTON_URL_INVALID")
    if not _opens_web_app(button):
        return False
    web_app_url(web_app_info(button, "can't parse inline keyboard button"), "inline keyboard button")
    return True


def inline(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a ``Message`` shows of a markup: only inline keyboards are echoed, a Web App's URL as
    Telegram stores it (``https://Dash.example.com`` comes back as ``https://dash.example.com/``)."""
    if found is None or "inline_keyboard" not in found:
        return None
    buttons = [button for row in found["inline_keyboard"] for button in row]
    if not any(_opens_web_app(button) for button in buttons):
        return found
    shown = copy.deepcopy(found)
    for button in (button for row in shown["inline_keyboard"] for button in row):
        if _opens_web_app(button):
            url = web_app_info(button, "can't parse inline keyboard button")
            button["web_app"] = {"url": web_app_url(url, "inline keyboard button")}
    return shown


def upload(params: dict[str, Any], name: str) -> UploadedFile:
    """The file uploaded as ``name`` (this project's bot uploads every picture and file it sends)."""
    value = params.get(name)
    if isinstance(value, UploadedFile):
        if not value.data:
            raise bad_request("file must be non-empty")
        return value
    if isinstance(value, str) and value:
        raise bad_request("wrong file identifier/HTTP URL specified")
    raise bad_request(f"there is no {name} in the request")


def file_ids(prefix: str, data: bytes) -> dict[str, Any]:
    """A new ``file_id`` and the ``file_unique_id`` of ``data``, shaped as Telegram's."""
    unique_id = "AQAD" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()[:9]).decode()
    return {"file_id": prefix + secrets.token_urlsafe(48), "file_unique_id": unique_id}


def photo_sizes(data: bytes) -> list[dict[str, Any]]:
    """The ``PhotoSize`` list Telegram makes of an uploaded PNG (thumbnails, then the picture at
    most 1280 pixels wide); 400 ``IMAGE_PROCESS_FAILED`` if it is not a picture."""
    if not (data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24):
        raise bad_request("IMAGE_PROCESS_FAILED")
    width, height = (int(side) for side in struct.unpack(">II", data[16:24]))
    longest = max(width, height)
    boxes = [(max(1, round(width * box / longest)), max(1, round(height * box / longest)))
             for box in (90, 320, 800) if longest > box]  # fmt: skip
    scale = min(1.0, 1280 / longest) if longest else 1.0
    boxes.append((round(width * scale), round(height * scale)))
    sizes = []
    for number, (w, h) in enumerate(boxes):
        largest = number == len(boxes) - 1
        size = len(data) if largest else max(1, len(data) * w * h // max(1, width * height))
        sizes.append(file_ids("AgACAgIAAxkDAAI", data) | {"width": w, "height": h, "file_size": size})
    return sizes
