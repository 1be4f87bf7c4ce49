"""A local stand-in for the Telegram Bot API, so the real bot runs with no network and no token.

It speaks the Bot API wire format closely enough that python-telegram-bot runs against it
unmodified: ``ApplicationBuilder().token(T).base_url(api.base_url)``, long polling, the
``AIORateLimiter``. Requests are ``POST|GET /bot<token>/<method>`` with form-urlencoded,
multipart (file uploads) or JSON bodies; answers are ``{"ok": true, "result": ...}`` or the
error envelope ``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``.

What it checks is what Telegram checks and a bot can get wrong: unknown chats, empty or too long
texts and captions, HTML that Telegram would refuse (unsupported or unbalanced tags; with
``strict_html`` also an unescaped ``&`` or ``>``, which Telegram tolerates but which means some
text was not escaped), oversized ``callback_data``, edits that change nothing, answers to unknown
callback queries, and the flood limits (429 with ``retry_after``) when they are switched on.

The people's side is driven from Python: :meth:`FakeBotApi.user_says`, :meth:`~FakeBotApi.user_taps`,
:meth:`~FakeBotApi.user_shares_contact`, :meth:`~FakeBotApi.user_forwards` queue the updates
Telegram would send; everything the bot sent is in :attr:`FakeBotApi.sent`, and
:meth:`FakeBotApi.wait_for` waits for the next message to a chat. :func:`running` serves it on a
loopback port on the current event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import io
import json
import logging
import math
import mimetypes
import re
import secrets
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = [
    "BotApiError",
    "HtmlError",
    "CallbackAnswer",
    "Call",
    "ChatLine",
    "FakeBotApi",
    "Sent",
    "TelegramUser",
    "WaitTimeout",
    "parse_html",
    "running",
]

_log = logging.getLogger(__name__)

MAX_TEXT: Final = 4096
"""Characters a message text may have after entity parsing."""

MAX_CAPTION: Final = 1024
"""Characters a caption may have after entity parsing."""

MAX_RECORDED_CALLS: Final = 100_000
"""How many requests :attr:`FakeBotApi.calls` keeps (polling adds one every few seconds)."""

MAX_CALLBACK_DATA: Final = 64
"""Bytes ``callback_data`` may have."""

SEND_METHODS: Final = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
"""The methods that post a new message: the flood limits and :meth:`FakeBotApi.fail_next` apply to these."""

DEFAULT_ALLOWED_UPDATES: Final = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
"""What ``getUpdates`` delivers when ``allowed_updates`` is empty (all but ``chat_member`` and reactions)."""

CHAT_ACTIONS: Final = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

NOT_MODIFIED: Final = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
QUERY_TOO_OLD: Final = "query is too old and response timeout expired or query ID is invalid"
WEBHOOK_CONFLICT: Final = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
CONFLICT: Final = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"

# Form fields whose value is a plain string even when it looks like JSON ("123", "true"): PTB
# sends strings as they are and everything else JSON-encoded, so only these must not be decoded.
_STRING_FIELDS: Final = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "url",
        "action",
        "language_code",
        "name",
        "description",
        "short_description",
        "photo",
        "document",
        "thumbnail",
        "file_id",
        "secret_token",
        "ip_address",
        "emoji",
        "title",
        "phone_number",
        "first_name",
        "last_name",
        "vcard",
        "data",
    }
)

_COMMAND_RE: Final = re.compile(r"(?<![\w/<>])/([A-Za-z0-9_]{1,64})(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")
_BOT_COMMAND_NAME: Final = re.compile(r"[a-z0-9_]{1,32}")
_BUTTON_URL: Final = re.compile(r"(?i)(https?|tg)://\S+")
_SPACE: Final = " \t\r\n\v\f\0"
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


def _utf16_len(text: str) -> int:
    """Telegram counts entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _now_unix() -> int:
    return int(time.time())


# -- values --------------------------------------------------------------------------------------


class BotApiError(Exception):
    """An error answer: turned into the Bot API's error envelope with ``error_code`` as HTTP status."""

    def __init__(self, error_code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(detail: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {detail}")


def _too_many_requests(retry_after: int) -> BotApiError:
    return BotApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})


class WaitTimeout(AssertionError, TimeoutError):
    """:meth:`FakeBotApi.wait_for` saw nothing matching in time (a failed assertion, and a timeout)."""


@dataclass(frozen=True)
class TelegramUser:
    """A person on Telegram, as the ``User`` object describes them."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``User`` JSON object (absent fields left out, as Telegram does)."""
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            value = getattr(self, key)
            if value is not None:
                user[key] = value
        return user

    def private_chat(self) -> dict[str, Any]:
        """The ``Chat`` object of this person's private chat with the bot (its id is the user id)."""
        chat: dict[str, Any] = {"id": self.id, "first_name": self.first_name}
        if self.last_name is not None:
            chat["last_name"] = self.last_name
        if self.username is not None:
            chat["username"] = self.username
        chat["type"] = "private"
        return chat

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    data: bytes
    filename: str | None
    content_type: str | None


@dataclass(frozen=True)
class _StoredFile:
    file_id: str
    unique_id: str
    data: bytes | None
    filename: str | None
    mime_type: str | None
    path: str


@dataclass
class Sent:
    """Something the bot posted or edited (``sendMessage``, ``sendPhoto``, ``editMessageText``...)."""

    index: int
    """Position in :attr:`FakeBotApi.sent` (pass ``index + 1`` as ``after`` to wait for the next one)."""
    method: str
    chat_id: int
    message_id: int
    text: str | None
    """The text or caption exactly as the bot sent it (with its HTML tags); ``None`` if none."""
    parse_mode: str | None
    rendered: str | None
    """The text or caption as the person sees it: tags removed, ``&amp;`` and the like decoded."""
    entities: list[dict[str, Any]]
    reply_markup: dict[str, Any] | None
    message: dict[str, Any]
    """The ``Message`` the API answered (for edits: the message after the edit)."""
    photo: bytes | None = None
    document: bytes | None = None
    filename: str | None = None
    mime_type: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The inline keyboard's buttons, row after row."""
        if not self.reply_markup:
            return []
        return [button for row in self.reply_markup.get("inline_keyboard", []) for button in row]

    def button(self, label: str) -> dict[str, Any]:
        """The inline button whose text is ``label`` (or contains it, if only one does)."""
        exact = [b for b in self.buttons if b.get("text") == label]
        partial = [b for b in self.buttons if label in str(b.get("text", ""))]
        found = exact or partial
        if len(found) != 1:
            raise LookupError(f"{len(found)} buttons match {label!r} in {self.short()}; buttons: {self._labels()}")
        return found[0]

    def _labels(self) -> list[str]:
        return [str(b.get("text")) for b in self.buttons]

    def summary(self) -> str:
        """What the person sees: the text, the file, the buttons."""
        what = self.rendered if self.rendered is not None else ""
        if self.photo is not None or self.method == "sendPhoto":
            what = f"[photo {self.filename or ''}] {what}".rstrip()
        elif self.document is not None or self.method == "sendDocument":
            what = f"[document {self.filename or ''}] {what}".rstrip()
        buttons = " " + " ".join(f"[{label}]" for label in self._labels()) if self.buttons else ""
        return f"{what}{buttons}"

    def short(self) -> str:
        """One line for listings: position, method, chat, message id and what the person sees."""
        text = self.summary().replace("\n", " / ")
        if len(text) > 160:
            text = text[:157] + "..."
        return f"#{self.index} {self.method} -> {self.chat_id} (message {self.message_id}): {text}"


@dataclass(frozen=True)
class CallbackAnswer:
    """An ``answerCallbackQuery`` the bot made (the little notice or alert the person sees)."""

    callback_query_id: str
    user_id: int
    chat_id: int | None
    message_id: int | None
    text: str | None
    show_alert: bool
    url: str | None
    at: datetime


@dataclass(frozen=True)
class Call:
    """A request the API received (files shown as ``<N bytes filename>``)."""

    method: str
    params: dict[str, Any]
    at: float


@dataclass(frozen=True)
class ChatLine:
    """One line of the conversation, either way, for :meth:`FakeBotApi.transcript`."""

    at: datetime
    chat_id: int
    who: str
    text: str


class _Signal:
    """Wakes every waiter when :meth:`pulse` is called.

    Waiters check their condition and then call :meth:`wait` with no ``await`` in between, so a
    pulse is never lost (one event loop, one thread). Bound lazily to the running loop.
    """

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._event is None or self._loop is not loop:
            self._event, self._loop = asyncio.Event(), loop
        return self._event

    def pulse(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, timeout: float) -> None:
        """Until the next pulse or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event().wait(), timeout)


class _Window:
    """A sliding-window flood limit: ``capacity`` messages per ``seconds``."""

    def __init__(self, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("a rate limit must be positive")
        self.seconds = max(1.0, 1.0 / per_second)
        self.capacity = max(1, int(per_second * self.seconds + 1e-9))
        self.times: deque[float] = deque()

    def retry_after(self, now: float) -> int | None:
        """Whole seconds to wait (>= 1) if one more message now would break the limit."""
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        if len(self.times) < self.capacity:
            return None
        return max(1, math.ceil(self.times[0] + self.seconds - now))

    def add(self, now: float) -> None:
        self.times.append(now)


# -- HTML as Telegram parses it ------------------------------------------------------------------


class HtmlError(ValueError):
    """Telegram would answer ``Bad Request: can't parse entities: <message>``."""


_HTML_TAGS: Final = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SIMPLE_ENTITIES: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "blockquote": "blockquote",
}
# Telegram orders entities that start and end together by type (tdlib's type priorities).
_ENTITY_PRIORITY: Final = {
    "blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}
_NAMED_ENTITIES: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _decode_html_entity(text: str, pos: int) -> tuple[str, int] | None:
    """The character an ``&...;`` at ``pos`` stands for and where it ends; ``None`` if it is no
    entity Telegram knows (numeric ones, ``&lt;`` ``&gt;`` ``&amp;`` ``&quot;``)."""
    end = pos + 1
    if text.startswith("#", end):
        end += 1
        hexadecimal = text.startswith("x", end)
        if hexadecimal:
            end += 1
        digits = "0123456789abcdefABCDEF" if hexadecimal else "0123456789"
        start = end
        while end < len(text) and text[end] in digits:
            end += 1
        if end == start or end - pos >= 10:
            return None
        code = int(text[start:end], 16 if hexadecimal else 10)
        if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        char = chr(code)
    else:
        start = end
        while end < len(text) and text[end].isascii() and text[end].isalpha():
            end += 1
        char = _NAMED_ENTITIES.get(text[start:end], "")
        if not char:
            return None
    if text.startswith(";", end):
        end += 1
    return char, end


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse ``text`` as Telegram parses ``parse_mode=HTML``: the text the person sees and its
    ``MessageEntity`` list (UTF-16 offsets).

    Follows Telegram's own parser (tdlib ``parse_html``): the supported tags only, attributes
    ``href``, ``class="language-..."``, ``class="tg-spoiler"`` and ``emoji-id``, tags balanced,
    the same error messages. ``strict`` also refuses an ``&`` that starts no entity and a bare
    ``>``: Telegram lets those through, but they show that some text was not escaped, and the
    next such text may hold a ``<`` that Telegram does refuse.

    Raises :class:`HtmlError` with the message Telegram gives after ``can't parse entities:``.
    """
    n = len(text)

    def byte_offset(pos: int) -> int:
        return len(text[:pos].encode())

    out: list[str] = []
    utf16 = 0
    entities: list[dict[str, Any]] = []
    # (tag, argument, utf16 offset at start, index into out at start)
    stack: list[tuple[str, str, int, int]] = []
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_html_entity(text, i)
            if decoded is not None:
                char, i = decoded
                out.append(char)
                utf16 += _utf16_len(char)
                continue
            if strict:
                raise HtmlError(
                    f'Character "&" must be escaped as "&amp;" at byte offset {byte_offset(i)} '
                    "(the local Bot API is stricter than Telegram here)"
                )
        if c == ">" and strict:
            raise HtmlError(
                f'Character ">" must be escaped as "&gt;" at byte offset {byte_offset(i)} '
                "(the local Bot API is stricter than Telegram here)"
            )
        if c != "<":
            out.append(c)
            utf16 += _utf16_len(c)
            i += 1
            continue

        begin = i
        i += 1
        if i >= n or text[i] != "/":
            # a start tag
            while i < n and text[i] not in _SPACE and text[i] != ">":
                i += 1
            if i >= n:
                raise HtmlError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            tag = text[begin + 1 : i].lower()
            if tag not in _HTML_TAGS:
                raise HtmlError(f'Unsupported start tag "{tag}" at byte offset {byte_offset(begin)}')
            argument = ""
            while i < n and text[i] != ">":
                while i < n and text[i] in _SPACE:
                    i += 1
                if i < n and text[i] == ">":
                    break
                attribute_begin = i
                while i < n and text[i] not in _SPACE and text[i] != "=":
                    i += 1
                attribute = text[attribute_begin:i]
                if not attribute:
                    raise HtmlError(f'Empty attribute name in the tag "{tag}" at byte offset {byte_offset(begin)}')
                while i < n and text[i] in _SPACE:
                    i += 1
                if i >= n or text[i] != "=":
                    raise HtmlError(
                        f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                        f"at byte offset {byte_offset(begin)}"
                    )
                i += 1
                while i < n and text[i] in _SPACE:
                    i += 1
                if i >= n:
                    raise HtmlError(f'Unclosed start tag "{tag}" at byte offset {byte_offset(begin)}')
                if text[i] not in "'\"":
                    token_begin = i
                    while i < n and (text[i].isascii() and text[i].isalnum() or text[i] in ".-"):
                        i += 1
                    value = text[token_begin:i].lower()
                    if i < n and text[i] not in _SPACE and text[i] != ">":
                        raise HtmlError(f"Unexpected end of name token at byte offset {byte_offset(token_begin)}")
                else:
                    quote = text[i]
                    i += 1
                    chars: list[str] = []
                    while i < n and text[i] != quote:
                        if text[i] == "&":
                            decoded = _decode_html_entity(text, i)
                            if decoded is not None:
                                chars.append(decoded[0])
                                i = decoded[1]
                                continue
                        chars.append(text[i])
                        i += 1
                    if i < n:
                        i += 1
                    value = "".join(chars)
                if i >= n:
                    raise HtmlError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
                if tag == "a" and attribute == "href":
                    argument = value
                elif tag == "code" and attribute == "class" and value.startswith("language-"):
                    argument = value.removeprefix("language-")
                elif tag == "span" and attribute == "class" and value.startswith("tg-"):
                    argument = value.removeprefix("tg-")
                elif tag == "tg-emoji" and attribute == "emoji-id":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise HtmlError(f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(begin)}')
            stack.append((tag, argument, utf16, len(out)))
            i += 1  # past '>'
            continue

        # an end tag
        if not stack:
            raise HtmlError(f"Unexpected end tag at byte offset {byte_offset(begin)}")
        i += 1  # past '/'
        name_begin = i
        while i < n and text[i] not in _SPACE and text[i] != ">":
            i += 1
        end_tag = text[name_begin:i].lower()
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n or text[i] != ">":
            raise HtmlError(f"Unclosed end tag at byte offset {byte_offset(begin)}")
        tag, argument, start, out_start = stack.pop()
        if end_tag and end_tag != tag:
            raise HtmlError(
                f'Unmatched end tag at byte offset {byte_offset(begin)}, expected "</{tag}>", found "</{end_tag}>"'
            )
        i += 1  # past '>'
        length = utf16 - start
        if length <= 0:
            continue
        entity: dict[str, Any] = {"offset": start, "length": length}
        if tag in _SIMPLE_ENTITIES or (tag == "span" and argument == "spoiler"):
            entity["type"] = _SIMPLE_ENTITIES.get(tag, "spoiler")
        elif tag == "tg-emoji":
            if not argument.isdigit() or int(argument) == 0:
                raise HtmlError("Invalid custom emoji identifier specified")
            entity |= {"type": "custom_emoji", "custom_emoji_id": argument}
        elif tag == "a":
            url = argument or "".join(out[out_start:])
            if not url.strip():
                continue
            entity |= {"type": "text_link", "url": url}
        elif tag == "pre":
            last = entities[-1] if entities else None
            if last and last["type"] == "code" and (last["offset"], last["length"]) == (start, length):
                language = last.pop("language", None)
                last["type"] = "pre"
                if language:
                    last["language"] = language
                continue
            entity["type"] = "pre"
        elif tag == "code":
            last = entities[-1] if entities else None
            if last and last["type"] == "pre" and (last["offset"], last["length"]) == (start, length) and argument:
                last["language"] = argument
                continue
            entity["type"] = "code"
            if argument:
                entity["language"] = argument  # dropped below unless a <pre> wraps it
        entities.append(entity)
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"], _ENTITY_PRIORITY.get(e["type"], 50)))
    return "".join(out), entities


def _command_entities(text: str) -> list[dict[str, Any]]:
    """The ``bot_command`` entities Telegram marks in a text a person sends."""
    return [
        {"offset": _utf16_len(text[: m.start()]), "length": _utf16_len(m.group(0)), "type": "bot_command"}
        for m in _COMMAND_RE.finditer(text)
    ]


# -- request bodies ------------------------------------------------------------------------------

_PARAM_RE: Final = re.compile(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="x"; filename="y"`` -> ``("form-data", {"name": "x", "filename": "y"})``."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(";" + rest):
        quoted, bare = match.group(2), match.group(3)
        raw = quoted if quoted is not None else bare or ""
        if quoted is not None:
            raw = re.sub(r"\\(.)", r"\1", raw).replace("%22", '"')
        params[match.group(1).lower()] = raw
    return main.strip().lower(), params


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    """Fields and files of a ``multipart/form-data`` body (RFC 7578), with the standard library only."""
    _, params = _header_params(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise _bad_request("can't parse multipart/form-data: no boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    chunks = (b"\r\n" + body).split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, separator, content = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise _bad_request("can't parse multipart/form-data: a part has no header end")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        _, disposition = _header_params(headers.get("content-disposition", ""))
        name = disposition.get("name")
        if name is None:
            continue
        if "filename" in disposition:
            files[name] = UploadedFile(content, disposition["filename"] or None, headers.get("content-type"))
        else:
            fields[name] = content.decode("utf-8", "replace")
    return fields, files


def _decode_field(name: str, value: Any) -> Any:
    """A form value as the Bot API reads it: JSON if it is JSON (but strings stay strings)."""
    if not isinstance(value, str) or name in _STRING_FIELDS:
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return value if isinstance(decoded, str) else decoded


def _as_int(value: Any, name: str, *, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise _bad_request(f"invalid {name} specified")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise _bad_request(f"invalid {name} specified")


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def _as_json(value: Any, name: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise _bad_request(f"can't parse {name} JSON object") from None
    return value


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF, JPEG (or, with Pillow, any) picture; ``None`` if it is none."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(width), int(height)
            i += 2 + length
        return None
    try:
        from PIL import Image  # noqa: PLC0415 - optional, only for unusual formats
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - any failure means "not a picture"
        return None


# -- the API -------------------------------------------------------------------------------------

_Handler = Callable[[dict[str, Any], Request], Awaitable[Any]]
_SELF: Final = object()


class FakeBotApi:
    """The Bot API of one bot, in memory: what PTB calls, and what people do in their chats.

    ``messages_per_second`` (Telegram: about 30 across all chats) and ``per_chat_per_second``
    (about 1 per chat) switch on flood control for :data:`SEND_METHODS`: a message past the limit
    is answered 429 with ``retry_after`` and not delivered. ``strict_html`` also refuses unescaped
    ``&`` and ``>`` (see :func:`parse_html`).
    """

    def __init__(
        self,
        token: str,
        username: str = "paygbot_demo_bot",
        bot_id: int | None = None,
        *,
        first_name: str = "PAYG Bot",
        messages_per_second: float | None = None,
        per_chat_per_second: float | None = None,
        strict_html: bool = True,
    ) -> None:
        self.token = token
        self.username = username
        prefix = token.partition(":")[0]
        self.bot_id = bot_id if bot_id is not None else int(prefix) if prefix.isdigit() else 7_000_000_001
        self.first_name = first_name
        self.strict_html = strict_html
        self.messages_per_second = messages_per_second
        self.per_chat_per_second = per_chat_per_second

        self.sent: list[Sent] = []
        """Every message the bot posted or edited, in order."""
        self.answers: list[CallbackAnswer] = []
        """Every ``answerCallbackQuery``."""
        self.calls: deque[Call] = deque(maxlen=MAX_RECORDED_CALLS)
        """The latest requests that reached a method (with a valid token), answered or refused."""
        self.chat_actions: list[tuple[int, str]] = []
        self.deleted: list[tuple[int, int]] = []
        """``(chat_id, message_id)`` of every message the bot deleted."""
        self.log: list[ChatLine] = []
        self.errors: list[BaseException] = []
        """Exceptions inside the stand-in itself (answered 500); a test may assert it stays empty."""
        self.rate_limited = 0
        """How many 429 answers were given (forced or by the flood limits)."""
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self.bot_texts: dict[tuple[str, str], str] = {}
        self.webhook_url = ""

        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._blocked: set[int] = set()
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._last_message_id: dict[int, int] = {}
        self._files: dict[str, _StoredFile] = {}
        self._updates: deque[dict[str, Any]] = deque()
        self._next_update_id = 1
        self._allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self._queries: dict[str, dict[str, Any]] = {}
        self._failures: deque[tuple[int, frozenset[str]]] = deque()
        self._global_window = _Window(messages_per_second) if messages_per_second else None
        self._chat_windows: dict[int, _Window] = {}
        self._poll_generation = 0
        self.waiting_polls = 0
        """How many ``getUpdates`` long polls are waiting right now."""
        self._closing = False
        self._mark = 0
        self._cursors: dict[int, int] = {}
        self._updates_signal = _Signal()
        self._sent_signal = _Signal()
        self.url: str | None = None
        """``http://host:port`` while :func:`running`."""
        self._app: Starlette | None = None
        handlers: dict[str, _Handler] = {
            "getMe": self._get_me,
            "logOut": self._ok,
            "close": self._ok,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
            "setMyName": self._bot_text_setter("name"),
            "getMyName": self._bot_text_getter("name"),
            "setMyDescription": self._bot_text_setter("description"),
            "getMyDescription": self._bot_text_getter("description"),
            "setMyShortDescription": self._bot_text_setter("short_description"),
            "getMyShortDescription": self._bot_text_getter("short_description"),
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
        }
        # Method names are case-insensitive in the Bot API.
        self._methods: dict[str, tuple[str, _Handler]] = {name.lower(): (name, h) for name, h in handlers.items()}

    @property
    def methods(self) -> list[str]:
        """The Bot API methods this stand-in answers."""
        return [name for name, _ in self._methods.values()]

    # -- addresses --------------------------------------------------------------------------

    def _require_url(self) -> str:
        if self.url is None:
            raise RuntimeError("the Bot API stand-in is not running: use `async with running(api)`")
        return self.url

    @property
    def base_url(self) -> str:
        """What PTB's ``base_url`` should be (``http://host:port/bot``; PTB appends the token)."""
        return self._require_url() + "/bot"

    @property
    def base_file_url(self) -> str:
        """What PTB's ``base_file_url`` should be, to download files the bot sent."""
        return self._require_url() + "/file/bot"

    @property
    def me(self) -> dict[str, Any]:
        """The bot as a ``User`` object."""
        return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    @property
    def commands(self) -> list[dict[str, str]]:
        """The commands set for the default scope and no particular language."""
        return self.commands_for()

    def commands_for(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, str]]:
        """The commands set for ``scope`` (default: ``{"type": "default"}``) and ``language_code``."""
        return list(self._commands.get(self._commands_key(scope, language_code), []))

    @property
    def all_commands(self) -> dict[tuple[str, str], list[dict[str, str]]]:
        """Every ``setMyCommands`` list, by (scope as canonical JSON, language code)."""
        return {key: list(value) for key, value in self._commands.items()}

    @property
    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by the bot (an ``offset`` past them)."""
        return len(self._updates)

    # -- the HTTP side ----------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        """The ASGI application (routes ``/bot<token>/<method>`` and ``/file/bot<token>/<path>``)."""
        if self._app is None:
            self._app = Starlette(
                routes=[
                    Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"]),
                    Route("/file/bot{token}/{path:path}", self._file_endpoint, methods=["GET"]),
                    Route("/{path:path}", self._not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
                ]
            )
        return self._app

    @staticmethod
    def _answer(body: dict[str, Any], status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status)

    @staticmethod
    def _error(error: BotApiError) -> JSONResponse:
        return JSONResponse(error.envelope(), status_code=error.error_code)

    async def _not_found(self, request: Request) -> Response:
        return self._error(BotApiError(404, "Not Found"))

    async def _endpoint(self, request: Request) -> Response:
        if not secrets.compare_digest(request.path_params["token"].encode(), self.token.encode()):
            return self._error(BotApiError(401, "Unauthorized"))
        found = self._methods.get(request.path_params["method"].lower())
        if found is None:
            return self._error(BotApiError(404, "Not Found: method not found"))
        method, handler = found
        try:
            params = await self._params(request)
        except BotApiError as error:
            return self._error(error)
        self.calls.append(Call(method, _printable(params), time.monotonic()))
        try:
            self._play_failure(method)
            result = await handler(params, request)
        except BotApiError as error:
            if error.error_code == 429:
                self.rate_limited += 1
            return self._error(error)
        except Exception as exc:  # noqa: BLE001 - a bug here must not look like a network failure
            _log.exception("the Bot API stand-in failed on %s", method)
            self.errors.append(exc)
            return self._error(BotApiError(500, f"Internal Server Error: {type(exc).__name__}: {exc}"))
        return self._answer({"ok": True, "result": result})

    async def _file_endpoint(self, request: Request) -> Response:
        if not secrets.compare_digest(request.path_params["token"].encode(), self.token.encode()):
            return self._error(BotApiError(401, "Unauthorized"))
        path = request.path_params["path"]
        for stored in self._files.values():
            if stored.path == path and stored.data is not None:
                return Response(stored.data, media_type=stored.mime_type or "application/octet-stream")
        return self._error(BotApiError(404, "Not Found"))

    async def _params(self, request: Request) -> dict[str, Any]:
        """The request's parameters: query string, then the body (form, multipart or JSON)."""
        raw: dict[str, Any] = dict(request.query_params)
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        mime = content_type.partition(";")[0].strip().lower()
        if body:
            if mime == "application/json":
                try:
                    data = json.loads(body)
                except ValueError:
                    raise _bad_request("can't parse JSON encoded request body") from None
                if not isinstance(data, dict):
                    raise _bad_request("JSON object expected as request body")
                raw.update(data)
            elif mime == "multipart/form-data":
                fields, files = _parse_multipart(body, content_type)
                raw.update(fields)
                raw.update(files)
            else:
                raw.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        params = {name: _decode_field(name, value) for name, value in raw.items()}
        for name, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                attached = params.get(value.removeprefix("attach://"))
                if isinstance(attached, UploadedFile):
                    params[name] = attached
        return params

    # -- faults and flood control -----------------------------------------------------------

    def fail_next(self, n: int = 1, retry_after: int = 1, methods: Iterable[str] = SEND_METHODS) -> None:
        """The next ``n`` requests to one of ``methods`` answer 429 ``retry_after`` (and deliver nothing)."""
        if retry_after < 1:
            raise ValueError("Telegram's retry_after is a whole number of seconds, at least 1")
        self._failures.extend([(int(retry_after), frozenset(methods))] * n)

    def _play_failure(self, method: str) -> None:
        for failure in self._failures:
            retry_after, methods = failure
            if method in methods:
                self._failures.remove(failure)
                raise _too_many_requests(retry_after)

    def _check_flood(self, chat_id: int) -> None:
        """Refuse (429) a new message to ``chat_id`` that the flood limits do not allow yet, else count it."""
        now = time.monotonic()
        windows = []
        if self._global_window is not None:
            windows.append(self._global_window)
        if self.per_chat_per_second:
            windows.append(self._chat_windows.setdefault(chat_id, _Window(self.per_chat_per_second)))
        waits = [wait for window in windows if (wait := window.retry_after(now)) is not None]
        if waits:
            raise _too_many_requests(max(waits))
        for window in windows:
            window.add(now)

    # -- chats and messages -----------------------------------------------------------------

    def meet(self, user: TelegramUser) -> None:
        """Make ``user``'s private chat known, as if they had opened the bot before (no update)."""
        self._chats[user.id] = user.private_chat()

    def block(self, user: TelegramUser | int) -> None:
        """The person blocks the bot: sending to them answers 403."""
        self._blocked.add(user.id if isinstance(user, TelegramUser) else user)

    def unblock(self, user: TelegramUser | int) -> None:
        self._blocked.discard(user.id if isinstance(user, TelegramUser) else user)

    def _chat(self, params: dict[str, Any], *, blocked_ok: bool = False) -> dict[str, Any]:
        """The known chat ``chat_id`` names (an id or ``@username``); 400 if none, 403 if blocked."""
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad_request("chat_id is empty")
        chat: dict[str, Any] | None = None
        if isinstance(raw, str) and raw.startswith("@"):
            wanted = raw[1:].lower()
            chat = next((c for c in self._chats.values() if str(c.get("username", "")).lower() == wanted), None)
        else:
            chat_id = _as_int(raw, "chat_id")
            chat = self._chats.get(chat_id) if chat_id is not None else None
        if chat is None:
            raise _bad_request("chat not found")
        if chat["id"] in self._blocked and not blocked_ok:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _new_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] = message_id = self._last_message_id.get(chat_id, 0) + 1
        return message_id

    def _stored(self, chat_id: int, params: dict[str, Any], *, what: str) -> dict[str, Any]:
        if params.get("inline_message_id"):
            raise _bad_request("MESSAGE_ID_INVALID")
        message_id = _as_int(params.get("message_id"), "message_id")
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise _bad_request(f"message to {what} not found")
        return message

    def _format(self, text: Any, params: dict[str, Any], *, caption: bool = False) -> tuple[str, list[dict[str, Any]]]:
        """The text (or caption) as shown and its entities, after ``parse_mode``; refuses what
        Telegram refuses."""
        limit, entities_key = (MAX_CAPTION, "caption_entities") if caption else (MAX_TEXT, "entities")
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        parse_mode = params.get("parse_mode")
        entities: list[dict[str, Any]] = []
        if parse_mode:
            mode = str(parse_mode).lower()
            if mode == "html":
                try:
                    text, entities = parse_html(text, strict=self.strict_html)
                except HtmlError as error:
                    raise _bad_request(f"can't parse entities: {error}") from None
            elif mode not in ("markdown", "markdownv2"):
                raise _bad_request("unsupported parse_mode")
            # Markdown is passed through unparsed: this project writes HTML.
        elif params.get(entities_key):
            given = _as_json(params[entities_key], entities_key)
            if not isinstance(given, list):
                raise _bad_request(f"can't parse {entities_key} JSON object")
            entities = given
        if not caption and not text.strip():
            raise _bad_request("message text is empty")
        if len(text) > limit:
            raise _bad_request("message caption is too long" if caption else "message is too long")
        return text, entities

    @staticmethod
    def _markup(params: dict[str, Any]) -> dict[str, Any] | None:
        raw = params.get("reply_markup")
        if raw is None or raw == "":
            return None
        markup = _as_json(raw, "reply keyboard markup")
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad_request("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays")
            for row in rows:
                for button in row:
                    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                        raise _bad_request("can't parse inline keyboard button: Field \"text\" must be of type String")
                    if not _BUTTON_ACTIONS & button.keys():
                        raise _bad_request(
                            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                        )
                    if "callback_data" in button:
                        data = button["callback_data"]
                        if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                            raise _bad_request("BUTTON_DATA_INVALID")
                    if "url" in button and not _BUTTON_URL.fullmatch(str(button["url"])):
                        raise _bad_request("BUTTON_URL_INVALID")
        return markup

    def _bot_message(
        self, chat: dict[str, Any], content: dict[str, Any], reply_to: dict[str, Any] | None
    ) -> dict[str, Any]:
        chat_id = chat["id"]
        message: dict[str, Any] = {
            "message_id": self._new_message_id(chat_id),
            "from": self.me,
            "chat": dict(chat),
            "date": _now_unix(),
        }
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message |= content
        self._messages[(chat_id, message["message_id"])] = message
        return message

    def _reply_to(self, chat_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        reply = params.get("reply_parameters")
        reply = _as_json(reply, "reply parameters") if reply is not None else None
        message_id = reply.get("message_id") if isinstance(reply, dict) else params.get("reply_to_message_id")
        if message_id is None:
            return None
        source = reply if isinstance(reply, dict) else params
        allow = _as_bool(source.get("allow_sending_without_reply"))
        replied = self._messages.get((chat_id, _as_int(message_id, "message_id") or 0))
        if replied is None:
            if allow:
                return None
            raise _bad_request("message to be replied not found")
        return {key: value for key, value in replied.items() if key != "reply_to_message"}

    def _record(
        self,
        method: str,
        message: dict[str, Any],
        params: dict[str, Any],
        *,
        text: str | None,
        rendered: str | None,
        entities: list[dict[str, Any]],
        markup: dict[str, Any] | None,
        photo: bytes | None = None,
        document: bytes | None = None,
        filename: str | None = None,
        mime_type: str | None = None,
    ) -> Sent:
        sent = Sent(
            index=len(self.sent),
            method=method,
            chat_id=message["chat"]["id"],
            message_id=message["message_id"],
            text=text,
            parse_mode=params.get("parse_mode") or None,
            rendered=rendered,
            entities=entities,
            reply_markup=markup,
            message=copy.deepcopy(message),
            photo=photo,
            document=document,
            filename=filename,
            mime_type=mime_type,
        )
        self.sent.append(sent)
        verb = "" if method in SEND_METHODS else f"({method}) "
        self.log.append(ChatLine(sent.at, sent.chat_id, f"@{self.username}", verb + sent.summary()))
        self._sent_signal.pulse()
        return sent

    @staticmethod
    def _inline(markup: dict[str, Any] | None) -> dict[str, Any] | None:
        """What a ``Message`` shows of a markup: only inline keyboards are echoed."""
        return markup if markup is not None and "inline_keyboard" in markup else None

    # -- methods: the bot and updates -------------------------------------------------------

    async def _ok(self, params: dict[str, Any], request: Request) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        return self.me | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _set_webhook(self, params: dict[str, Any], request: Request) -> bool:
        url = params.get("url") or ""
        if url and not str(url).startswith("https://"):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = str(url)
        if _as_bool(params.get("drop_pending_updates")):
            self._updates.clear()
        return True

    async def _delete_webhook(self, params: dict[str, Any], request: Request) -> bool:
        self.webhook_url = ""
        if _as_bool(params.get("drop_pending_updates")):
            self._updates.clear()
            self._updates_signal.pulse()
        return True

    async def _get_webhook_info(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        return {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        elif offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()
        self._updates_signal.pulse()

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        batch = []
        for update in self._updates:
            kind = next(key for key in update if key != "update_id")
            if kind in self._allowed_updates:
                batch.append(update)
                if len(batch) == limit:
                    break
        return batch

    async def _get_updates(self, params: dict[str, Any], request: Request) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise BotApiError(409, WEBHOOK_CONFLICT)
        offset = _as_int(params.get("offset"), "offset", default=0) or 0
        limit = min(100, max(1, _as_int(params.get("limit"), "limit", default=100) or 100))
        try:
            wait = max(0.0, float(params.get("timeout") or 0))
        except (TypeError, ValueError):
            raise _bad_request("invalid timeout specified") from None
        allowed = params.get("allowed_updates")
        if allowed is not None:
            allowed = _as_json(allowed, "allowed_updates")
            self._allowed_updates = frozenset(allowed) if allowed else DEFAULT_ALLOWED_UPDATES
        self._confirm(offset)
        # Telegram ends an older long poll when a newer one arrives (409 to the older).
        self._poll_generation += 1
        generation = self._poll_generation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        disconnected: asyncio.Future[Any] | None = None
        self.waiting_polls += 1
        try:
            while True:
                if generation != self._poll_generation:
                    raise BotApiError(409, CONFLICT)
                batch = self._deliverable(limit)
                if batch or self._closing:
                    return batch
                remaining = deadline - loop.time()
                if remaining <= 0 or (disconnected is not None and disconnected.done()):
                    return []
                if disconnected is None:
                    # After the body, the next ASGI message is the client going away.
                    disconnected = asyncio.ensure_future(request.receive())
                woken = asyncio.ensure_future(self._updates_signal.event().wait())
                try:
                    await asyncio.wait({woken, disconnected}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
        finally:
            self.waiting_polls -= 1
            if disconnected is not None and not disconnected.done():
                disconnected.cancel()

    # -- methods: commands and settings -----------------------------------------------------

    def _commands_key(self, scope: Any, language_code: Any, *, check: bool = False) -> tuple[str, str]:
        scope = _as_json(scope, "scope") if scope not in (None, "") else {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise _bad_request("can't parse BotCommandScope JSON object")
        if check and scope["type"] in ("chat", "chat_administrators", "chat_member"):
            # Telegram refuses a scope naming a chat that never talked to the bot.
            chat = self._chat({"chat_id": scope.get("chat_id")}, blocked_ok=True)
            scope = {**scope, "chat_id": chat["id"]}
        return json.dumps(scope, sort_keys=True, separators=(",", ":")), str(language_code or "")

    async def _set_my_commands(self, params: dict[str, Any], request: Request) -> bool:
        commands = _as_json(params.get("commands"), "commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad_request("too many commands specified")
        cleaned = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad_request("can't parse BotCommand JSON object")
            name = str(command.get("command", "")).removeprefix("/")
            description = str(command.get("description", ""))
            if not _BOT_COMMAND_NAME.fullmatch(name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description.strip()) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": name, "description": description})
        key = self._commands_key(params.get("scope"), params.get("language_code"), check=True)
        if cleaned:
            self._commands[key] = cleaned
        else:
            self._commands.pop(key, None)
        return True

    async def _get_my_commands(self, params: dict[str, Any], request: Request) -> list[dict[str, str]]:
        key = self._commands_key(params.get("scope"), params.get("language_code"), check=True)
        return list(self._commands.get(key, []))

    async def _delete_my_commands(self, params: dict[str, Any], request: Request) -> bool:
        self._commands.pop(self._commands_key(params.get("scope"), params.get("language_code"), check=True), None)
        return True

    async def _set_chat_menu_button(self, params: dict[str, Any], request: Request) -> bool:
        chat_id = self._chat(params)["id"] if params.get("chat_id") not in (None, "") else None
        button = _as_json(params.get("menu_button"), "menu button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in ("commands", "web_app", "default"):
            raise _bad_request("can't parse menu button JSON object")
        self.menu_buttons[chat_id] = button
        return True

    async def _get_chat_menu_button(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        chat_id = self._chat(params)["id"] if params.get("chat_id") not in (None, "") else None
        return self.menu_buttons.get(chat_id) or self.menu_buttons.get(None) or {"type": "default"}

    def _bot_text_setter(self, kind: str) -> _Handler:
        async def handler(params: dict[str, Any], request: Request) -> bool:
            language = str(params.get("language_code") or "")
            value = str(params.get(kind) or "")
            if value:
                self.bot_texts[(kind, language)] = value
            else:
                self.bot_texts.pop((kind, language), None)
            return True

        return handler

    def _bot_text_getter(self, kind: str) -> _Handler:
        async def handler(params: dict[str, Any], request: Request) -> dict[str, str]:
            language = str(params.get("language_code") or "")
            default = self.first_name if kind == "name" else ""
            return {kind: self.bot_texts.get((kind, language), self.bot_texts.get((kind, ""), default))}

        return handler

    # -- methods: messages ------------------------------------------------------------------

    async def _send_message(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        chat = self._chat(params)
        text = params.get("text")
        rendered, entities = self._format(text, params)
        markup = self._markup(params)
        reply_to = self._reply_to(chat["id"], params)
        self._check_flood(chat["id"])
        content: dict[str, Any] = {"text": rendered}
        if entities:
            content["entities"] = entities
        if (inline := self._inline(markup)) is not None:
            content["reply_markup"] = inline
        message = self._bot_message(chat, content, reply_to)
        self._record("sendMessage", message, params, text=text, rendered=rendered, entities=entities, markup=markup)
        return message

    def _file_input(
        self, params: dict[str, Any], name: str
    ) -> tuple[bytes | None, str | None, str | None, _StoredFile | None, str | None]:
        """``(data, filename, content type, stored file reused, url)`` of the ``name`` parameter."""
        value = params.get(name)
        if isinstance(value, UploadedFile):
            if not value.data:
                raise _bad_request("file must be non-empty")
            return value.data, value.filename, value.content_type, None, None
        if isinstance(value, str) and value:
            stored = self._files.get(value)
            if stored is not None:
                return stored.data, stored.filename, stored.mime_type, stored, None
            if re.match(r"(?i)https?://", value):
                return None, value.rsplit("/", 1)[-1] or None, None, None, value
            raise _bad_request("wrong file identifier/HTTP URL specified")
        raise _bad_request(f"there is no {name} in the request")

    def _store_file(
        self, prefix: str, data: bytes | None, filename: str | None, mime_type: str | None, suffix: str
    ) -> _StoredFile:
        file_id = prefix + secrets.token_urlsafe(48)
        digest = hashlib.sha256(data if data is not None else file_id.encode()).digest()
        unique_id = "AQAD" + base64.urlsafe_b64encode(digest[:9]).decode()
        folder = "photos" if prefix.startswith("AgAC") else "documents"
        stored = _StoredFile(file_id, unique_id, data, filename, mime_type, f"{folder}/file_{len(self._files)}{suffix}")
        self._files[file_id] = stored
        return stored

    async def _send_photo(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        chat = self._chat(params)
        data, filename, _, reused, url = self._file_input(params, "photo")
        size = _image_size(data) if data is not None else (0, 0)
        if size is None:
            raise _bad_request("IMAGE_PROCESS_FAILED")
        caption = params.get("caption")
        rendered, entities = self._format(caption, params, caption=True)
        markup = self._markup(params)
        reply_to = self._reply_to(chat["id"], params)
        self._check_flood(chat["id"])
        width, height = size
        sizes = []
        longest = max(width, height)
        for box in (90, 320, 800):
            if longest > box:
                scale = box / longest
                sizes.append((max(1, round(width * scale)), max(1, round(height * scale))))
        scale = min(1.0, 1280 / longest) if longest else 1.0
        sizes.append((round(width * scale), round(height * scale)))
        photo = []
        for number, (w, h) in enumerate(sizes):
            largest = number == len(sizes) - 1
            stored = reused if largest and reused is not None else self._store_file(
                "AgACAgIAAxkDAAI", data, filename, "image/jpeg", ".jpg"
            )
            entry: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.unique_id}
            entry |= {"width": w, "height": h}
            if data is not None:
                entry["file_size"] = len(data) if largest else max(1, len(data) * w * h // max(1, width * height))
            photo.append(entry)
        content: dict[str, Any] = {"photo": photo}
        if caption:
            content["caption"] = rendered
            if entities:
                content["caption_entities"] = entities
        if (inline := self._inline(markup)) is not None:
            content["reply_markup"] = inline
        message = self._bot_message(chat, content, reply_to)
        self._record(
            "sendPhoto", message, params,
            text=caption if caption else None, rendered=rendered if caption else None, entities=entities,
            markup=markup, photo=data, filename=filename or url, mime_type="image/jpeg",
        )  # fmt: skip
        return message

    async def _send_document(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        chat = self._chat(params)
        data, filename, content_type, reused, url = self._file_input(params, "document")
        caption = params.get("caption")
        rendered, entities = self._format(caption, params, caption=True)
        markup = self._markup(params)
        reply_to = self._reply_to(chat["id"], params)
        self._check_flood(chat["id"])
        mime_type = content_type if content_type and content_type != "application/octet-stream" else None
        mime_type = mime_type or (mimetypes.guess_type(filename)[0] if filename else None) or "application/octet-stream"
        if reused is not None:
            stored = reused
        else:
            suffix = "." + filename.rsplit(".", 1)[1] if filename and "." in filename else ""
            stored = self._store_file("BQACAgIAAxkDAAI", data, filename, mime_type, suffix)
        document: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.unique_id}
        if filename:
            document["file_name"] = filename
        document["mime_type"] = mime_type
        if data is not None:
            document["file_size"] = len(data)
        content: dict[str, Any] = {"document": document}
        if caption:
            content["caption"] = rendered
            if entities:
                content["caption_entities"] = entities
        if (inline := self._inline(markup)) is not None:
            content["reply_markup"] = inline
        message = self._bot_message(chat, content, reply_to)
        self._record(
            "sendDocument", message, params,
            text=caption if caption else None, rendered=rendered if caption else None, entities=entities,
            markup=markup, document=data, filename=filename or url, mime_type=mime_type,
        )  # fmt: skip
        return message

    def _editable(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        chat = self._chat(params)
        message = self._stored(chat["id"], params, what="edit")
        if message.get("from", {}).get("id") != self.bot_id:
            raise _bad_request("message can't be edited")
        return chat, message

    def _edited(self, method: str, message: dict[str, Any], params: dict[str, Any], **record: Any) -> dict[str, Any]:
        message["edit_date"] = _now_unix()
        self._record(method, message, params, **record)
        return copy.deepcopy(message)

    async def _edit_message_text(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        _, message = self._editable(params)
        if "text" not in message:
            raise _bad_request("there is no text in the message to edit")
        text = params.get("text")
        rendered, entities = self._format(text, params)
        markup = self._markup(params)
        inline = self._inline(markup)
        # Without reply_markup, editing the text removes the inline keyboard.
        if (rendered, entities, inline) == (message["text"], message.get("entities", []), message.get("reply_markup")):
            raise _bad_request(NOT_MODIFIED)
        message["text"] = rendered
        _set_or_drop(message, "entities", entities or None)
        _set_or_drop(message, "reply_markup", inline)
        return self._edited(
            "editMessageText", message, params, text=text, rendered=rendered, entities=entities, markup=markup
        )

    async def _edit_message_caption(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        _, message = self._editable(params)
        if "photo" not in message and "document" not in message:
            raise _bad_request("there is no caption in the message to edit")
        caption = params.get("caption")
        rendered, entities = self._format(caption, params, caption=True)
        markup = self._markup(params)
        inline = self._inline(markup)
        current = (message.get("caption", ""), message.get("caption_entities", []), message.get("reply_markup"))
        if (rendered, entities, inline) == current:
            raise _bad_request(NOT_MODIFIED)
        _set_or_drop(message, "caption", rendered or None)
        _set_or_drop(message, "caption_entities", entities or None)
        _set_or_drop(message, "reply_markup", inline)
        return self._edited(
            "editMessageCaption", message, params, text=caption, rendered=rendered, entities=entities, markup=markup
        )

    async def _edit_message_reply_markup(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        _, message = self._editable(params)
        markup = self._markup(params)
        inline = self._inline(markup)
        if inline == message.get("reply_markup"):
            raise _bad_request(NOT_MODIFIED)
        _set_or_drop(message, "reply_markup", inline)
        shown = message.get("text", message.get("caption"))
        return self._edited(
            "editMessageReplyMarkup", message, params,
            text=None, rendered=shown, entities=list(message.get("entities", message.get("caption_entities", []))),
            markup=markup,
        )  # fmt: skip

    async def _delete_message(self, params: dict[str, Any], request: Request) -> bool:
        chat = self._chat(params)
        message = self._stored(chat["id"], params, what="delete")
        del self._messages[(chat["id"], message["message_id"])]
        self.deleted.append((chat["id"], message["message_id"]))
        line = f"(deleted message {message['message_id']})"
        self.log.append(ChatLine(datetime.now(UTC), chat["id"], f"@{self.username}", line))
        self._sent_signal.pulse()
        return True

    async def _answer_callback_query(self, params: dict[str, Any], request: Request) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        query = self._queries.get(query_id)
        if query is None or query["answered"]:
            raise _bad_request(QUERY_TOO_OLD)
        query["answered"] = True
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        answer = CallbackAnswer(
            callback_query_id=query_id,
            user_id=query["user_id"],
            chat_id=query["chat_id"],
            message_id=query["message_id"],
            text=str(text) if text else None,
            show_alert=_as_bool(params.get("show_alert")),
            url=params.get("url") or None,
            at=datetime.now(UTC),
        )
        self.answers.append(answer)
        if answer.text and query["chat_id"] is not None:
            kind = "alert" if answer.show_alert else "notice"
            self.log.append(ChatLine(answer.at, query["chat_id"], f"@{self.username}", f"({kind}) {answer.text}"))
        self._sent_signal.pulse()
        return True

    async def _send_chat_action(self, params: dict[str, Any], request: Request) -> bool:
        chat = self._chat(params)
        action = str(params.get("action") or "")
        if action not in CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        self.chat_actions.append((chat["id"], action))
        return True

    async def _get_file(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise _bad_request("invalid file_id")
        result: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.unique_id}
        result["file_path"] = stored.path
        if stored.data is not None:
            result["file_size"] = len(stored.data)
        return result

    # -- the people's side ------------------------------------------------------------------

    def _chat_of(self, user: TelegramUser, chat: int | dict[str, Any] | None) -> dict[str, Any]:
        if chat is None:
            found = user.private_chat()
        elif isinstance(chat, dict):
            found = dict(chat)
        elif chat == user.id:
            found = user.private_chat()
        elif chat < 0:
            kind = "supergroup" if str(chat).startswith("-100") else "group"
            found = self._chats.get(chat) or {"id": chat, "title": f"Group {-chat}", "type": kind}
        else:
            raise ValueError(f"chat {chat}: a private chat's id is its user's id; pass a group id (< 0) or a Chat dict")
        self._chats[found["id"]] = found
        if found["id"] == user.id:
            self._blocked.discard(user.id)  # writing to the bot again unblocks it
        return found

    def _user_message(
        self, user: TelegramUser, chat: int | dict[str, Any] | None, content: dict[str, Any]
    ) -> dict[str, Any]:
        chat_dict = self._chat_of(user, chat)
        message: dict[str, Any] = {
            "message_id": self._new_message_id(chat_dict["id"]),
            "from": user.to_dict(),
            "chat": dict(chat_dict),
            "date": _now_unix(),
        } | content
        self._messages[(chat_dict["id"], message["message_id"])] = message
        return message

    async def push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update ``{"update_id": N, kind: payload}`` for ``getUpdates``."""
        update = {"update_id": self._next_update_id, kind: copy.deepcopy(payload)}
        self._next_update_id += 1
        self._updates.append(update)
        self._mark = len(self.sent)
        self._updates_signal.pulse()
        return update

    def _said(self, user: TelegramUser, chat_id: int, text: str) -> None:
        self.log.append(ChatLine(datetime.now(UTC), chat_id, user.name, text))

    async def user_says(
        self,
        user: TelegramUser,
        text: str,
        *,
        chat: int | dict[str, Any] | None = None,
        reply_to: Sent | dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``user`` sends ``text`` (typed or pasted) in their private chat (or ``chat``); returns the
        ``Message``. Commands (``/start``, ``/days@paygbot_demo_bot``) get ``bot_command`` entities."""
        if not text.strip():
            raise ValueError("Telegram clients do not send empty messages")
        content: dict[str, Any] = {"text": text}
        if entities := _command_entities(text):
            content["entities"] = entities
        if reply_to is not None:
            replied = reply_to.message if isinstance(reply_to, Sent) else reply_to
            current = self._messages.get((replied["chat"]["id"], replied["message_id"]), replied)
            content["reply_to_message"] = {k: v for k, v in current.items() if k != "reply_to_message"}
        message = self._user_message(user, chat, content)
        self._said(user, message["chat"]["id"], text)
        await self.push_update("message", message)
        return message

    async def user_forwards(
        self,
        user: TelegramUser,
        text: str,
        *,
        origin: TelegramUser | str | None = None,
        chat: int | dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``user`` forwards a message with ``text`` that ``origin`` wrote (a user, or the name of
        one who hides their account; default: a hidden "Unknown")."""
        when = _now_unix() - 60
        if isinstance(origin, TelegramUser):
            forward: dict[str, Any] = {"type": "user", "date": when, "sender_user": origin.to_dict()}
        else:
            forward = {"type": "hidden_user", "date": when, "sender_user_name": origin or "Unknown"}
        content: dict[str, Any] = {"forward_origin": forward, "text": text}
        if entities := _command_entities(text):
            content["entities"] = entities
        message = self._user_message(user, chat, content)
        self._said(user, message["chat"]["id"], f"(forwarded) {text}")
        await self.push_update("message", message)
        return message

    async def user_shares_contact(
        self,
        user: TelegramUser,
        phone: str,
        contact_user_id: int | None | object = _SELF,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        chat: int | dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``user`` shares a contact: by default their own (``user_id`` = theirs, as the "share my
        phone number" button does); ``contact_user_id`` another person's id, or ``None`` for a
        contact that is no Telegram user. Telegram often sends the number without a leading ``+``."""
        contact: dict[str, Any] = {"phone_number": phone, "first_name": first_name or user.first_name}
        if last_name is not None or (first_name is None and user.last_name):
            contact["last_name"] = last_name if last_name is not None else user.last_name
        owner = user.id if contact_user_id is _SELF else contact_user_id
        if owner is not None:
            contact["user_id"] = owner
        message = self._user_message(user, chat, {"contact": contact})
        self._said(user, message["chat"]["id"], f"(contact {phone})")
        await self.push_update("message", message)
        return message

    async def user_taps(self, user: TelegramUser, message: Sent | dict[str, Any], data: str) -> dict[str, Any]:
        """``user`` taps the inline button with ``callback_data`` ``data`` (or, failing that, the
        button labelled ``data``) on ``message`` as they saw it; returns the ``CallbackQuery``."""
        seen = message.message if isinstance(message, Sent) else message
        markup = (message.reply_markup if isinstance(message, Sent) else None) or seen.get("reply_markup") or {}
        buttons = [b for row in markup.get("inline_keyboard", []) for b in row]
        chosen = next((b for b in buttons if b.get("callback_data") == data), None)
        if chosen is None:
            labelled = [b for b in buttons if b.get("text") == data and "callback_data" in b]
            if len(labelled) != 1:
                offered = [(b.get("text"), b.get("callback_data")) for b in buttons]
                raise ValueError(f"no button with callback_data (or text) {data!r} on that message; buttons: {offered}")
            chosen = labelled[0]
        chat_id = seen["chat"]["id"]
        current = self._messages.get((chat_id, seen["message_id"]))
        if current is None:
            raise ValueError(f"message {seen['message_id']} in chat {chat_id} was deleted: nothing to tap")
        query_id = str(secrets.randbits(62))
        query = {
            "id": query_id,
            "from": user.to_dict(),
            "message": copy.deepcopy(current),
            "chat_instance": str(int.from_bytes(hashlib.sha256(f"{self.bot_id}:{chat_id}".encode()).digest()[:7])),
            "data": chosen["callback_data"],
        }
        self._queries[query_id] = {
            "user_id": user.id,
            "chat_id": chat_id,
            "message_id": seen["message_id"],
            "answered": False,
        }
        self._said(user, chat_id, f"(taps [{chosen.get('text')}])")
        await self.push_update("callback_query", query)
        return query

    # -- waiting and reading ----------------------------------------------------------------

    def sent_to(self, chat: int | TelegramUser) -> list[Sent]:
        """Everything the bot posted or edited in ``chat``, in order."""
        chat_id = chat.id if isinstance(chat, TelegramUser) else chat
        return [sent for sent in self.sent if sent.chat_id == chat_id]

    def answered(self, query: dict[str, Any] | str) -> CallbackAnswer | None:
        """The bot's answer to a callback query (as :meth:`user_taps` returned it), if any yet."""
        query_id = query if isinstance(query, str) else query["id"]
        return next((answer for answer in self.answers if answer.callback_query_id == query_id), None)

    @property
    def position(self) -> int:
        """``len(sent)``: pass it as ``after`` to wait only for what comes next."""
        return len(self.sent)

    async def wait_for(
        self,
        target: int | TelegramUser | Callable[[Sent], bool] | None = None,
        *,
        after: int | None = None,
        timeout: float = 10.0,
        methods: Iterable[str] | None = None,
    ) -> Sent:
        """The first :class:`Sent` at or after position ``after`` to the chat ``target`` (a chat id
        or a person), or matching ``target`` (a predicate), or any (``None``); waits for it up
        to ``timeout`` seconds.

        ``after`` defaults to the position when the people's side last acted (``user_says`` and
        friends), i.e. "the bot's answer to what was just done", or, if later, just past what
        ``wait_for`` last returned for that chat: so two waits in a row give two messages.
        Raises :class:`WaitTimeout` naming what was awaited and listing what was sent.
        """
        wanted_methods = frozenset(methods) if methods is not None else None
        chat_id: int | None = None
        if isinstance(target, TelegramUser):
            chat_id = target.id
        elif isinstance(target, int) and not isinstance(target, bool):
            chat_id = target
        predicate: Callable[[Sent], bool] | None = target if callable(target) else None  # type: ignore[assignment]

        def matches(sent: Sent) -> bool:
            if wanted_methods is not None and sent.method not in wanted_methods:
                return False
            if chat_id is not None and sent.chat_id != chat_id:
                return False
            return predicate is None or bool(predicate(sent))

        if after is not None:
            start = after
        elif chat_id is not None:
            start = max(self._mark, self._cursors.get(chat_id, 0))
        else:
            start = self._mark
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for sent in self.sent[start:]:
                if matches(sent):
                    self._cursors[sent.chat_id] = max(self._cursors.get(sent.chat_id, 0), sent.index + 1)
                    return sent
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeout(self._describe_wait(target, chat_id, start, timeout, wanted_methods))
            await self._sent_signal.wait(remaining)

    def _describe_wait(
        self, target: object, chat_id: int | None, start: int, timeout: float, methods: frozenset[str] | None
    ) -> str:
        if chat_id is not None:
            what = f"message to chat {chat_id}"
            seen = self.sent_to(chat_id)
            seen_label = f"sent to chat {chat_id}"
        elif target is None:
            what, seen, seen_label = "message", self.sent, "sent"
        else:
            what = f"message matching {getattr(target, '__name__', repr(target))}"
            seen, seen_label = self.sent, "sent"
        if methods is not None:
            what += f" ({', '.join(sorted(methods))})"
        lines = [f"no {what} from position #{start} within {timeout:g} s."]
        if seen:
            lines.append(f"What was {seen_label} ({len(seen)}, last 20):")
            lines += [f"  {sent.short()}" for sent in seen[-20:]]
        else:
            lines.append(f"Nothing was {seen_label}.")
        if self.errors:
            lines.append(f"The stand-in itself failed {len(self.errors)} times: {self.errors[-1]!r}")
        if self._updates:
            lines.append(f"{len(self._updates)} updates are still waiting for the bot to fetch them.")
        return "\n".join(lines)

    async def wait_updates_consumed(self, timeout: float = 10.0) -> None:
        """Until the bot has fetched and confirmed every queued update (polling goes on)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._updates:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeout(f"{len(self._updates)} updates not confirmed by the bot within {timeout:g} s")
            await self._updates_signal.wait(remaining)

    def transcript(self, chat: int | TelegramUser | None = None) -> list[str]:
        """The conversation as lines ``"[chat] who: text"`` (one chat, or all), oldest first."""
        chat_id = chat.id if isinstance(chat, TelegramUser) else chat
        return [
            f"[{line.chat_id}] {line.who}: {line.text}" if chat_id is None else f"{line.who}: {line.text}"
            for line in self.log
            if chat_id is None or line.chat_id == chat_id
        ]


def _set_or_drop(message: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        message.pop(key, None)
    else:
        message[key] = value


def _printable(params: dict[str, Any]) -> dict[str, Any]:
    return {
        name: f"<{len(value.data)} bytes {value.filename or ''}>".replace(" >", ">")
        if isinstance(value, UploadedFile)
        else value
        for name, value in params.items()
    }


# -- serving -------------------------------------------------------------------------------------


class _InProcessServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process it is embedded in."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@contextlib.asynccontextmanager
async def running(
    api: FakeBotApi, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 5.0
) -> AsyncIterator[str]:
    """Serve ``api`` on this event loop for the duration of the block; yields the ``base_url`` to
    give PTB (``http://host:port/bot``; PTB appends the token). ``port=0`` takes a free port."""
    config = uvicorn.Config(
        api.app, host=host, port=port, log_level="warning", log_config=None, ws="none", http="h11", lifespan="off"
    )
    server = _InProcessServer(config)
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + startup_timeout
    while not server.started:
        if task.done():
            task.result()  # re-raise why it stopped
            raise RuntimeError("the Bot API stand-in stopped before it started")
        if loop.time() > deadline:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise TimeoutError(f"the Bot API stand-in did not start within {startup_timeout} s")
        await asyncio.sleep(0.005)
    bound_host, bound_port = server.servers[0].sockets[0].getsockname()[:2]
    api.url = f"http://{bound_host}:{bound_port}"
    api._closing = False
    try:
        yield api.base_url
    finally:
        # End waiting long polls at once, so the server does not wait for their timeouts.
        api._closing = True
        api._updates_signal.pulse()
        server.should_exit = True
        await task
        api.url = None
