"""What the Telegram stand-in deals in: people, what the bot sent, callback answers, uploaded
files, and the Bot API's error answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_TEXT = 4096
"""Characters a message text may have after entity parsing."""

MAX_CAPTION = 1024
"""Characters a caption may have after entity parsing."""

MAX_CALLBACK_DATA = 64
"""Bytes ``callback_data`` may have."""


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


def bad_request(detail: str) -> BotApiError:
    """``400 Bad Request: <detail>``, Telegram's answer to a request it will not carry out."""
    return BotApiError(400, f"Bad Request: {detail}")


def too_many_requests(retry_after: int) -> BotApiError:
    """Telegram's flood answer: ``429`` with ``parameters.retry_after`` in whole seconds."""
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
    """When the stand-in received it."""

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
