"""The Telegram stand-in's chat state: the bot, the chats it knows, their messages, the updates
waiting for ``getUpdates``, and the people's side (:meth:`FakeBotApi.user_says` and friends
queue the updates Telegram would send). What the bot sent, and waiting for it, is the
:class:`~bot.standins.telegram.outbox.Outbox` this builds on; the Bot API methods that change
this state are in :mod:`bot.standins.telegram.methods`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

from bot.standins.telegram.flood import SEND_METHODS, FloodControl
from bot.standins.telegram.html import command_entities
from bot.standins.telegram.outbox import Outbox, Signal
from bot.standins.telegram.values import BotApiError, Sent, TelegramUser, bad_request
from bot.standins.telegram.webhook import Webhook, WebhookDelivery
from bot.standins.telegram.wire import as_int

_SELF: Final = object()


def now_unix() -> int:
    return int(time.time())


class FakeBotApi(Outbox):
    """The Bot API of one bot, in memory: what PTB calls, and what people do in their chats.

    Reach it through :class:`~bot.standins.telegram.transport.StandInRequest` (in this process)
    or :func:`bot.standins.telegram.server.running` (over loopback HTTP). ``messages_per_second``
    (Telegram: about 30 across all chats) and ``per_chat_per_second`` (about 1 per chat) switch on
    flood control: a message past the limit is answered 429 with ``retry_after`` and not delivered.
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
    ) -> None:
        super().__init__()
        self.token = token
        self.username = username
        prefix = token.partition(":")[0]
        self.bot_id = bot_id if bot_id is not None else int(prefix) if prefix.isdigit() else 7_000_000_001
        self.first_name = first_name
        self.flood = FloodControl(messages_per_second, per_chat_per_second)
        self.errors: list[BaseException] = []
        """Exceptions inside the stand-in itself (answered 500); a test may assert it stays empty."""
        self.rate_limited = 0
        """How many 429 answers were given (forced or by the flood limits)."""
        self.command_lists: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        """What ``setChatMenuButton`` set: ``None`` the bot's own button, a user id the one chosen for
        the chat with that person (an absent key: nothing specific, ``{"type": "default"}``)."""
        self.chats: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.queries: dict[str, dict[str, Any]] = {}
        """Callback queries sent to the bot, by id: who tapped what, and whether it was answered."""
        self.updates: deque[dict[str, Any]] = deque()
        """Updates queued and not yet confirmed by the bot (an ``offset`` past them)."""
        self.updates_signal = Signal()
        self.poll_generation = 0
        self.waiting_polls = 0
        """How many ``getUpdates`` long polls are waiting right now."""
        self.closing = False
        """Set while the HTTP form shuts down: waiting long polls answer at once."""
        self.webhook: Webhook | None = None
        """What ``setWebhook`` set (None: long polling); updates are POSTed to it while set."""
        self.webhook_delivery = WebhookDelivery(self)
        self._blocked: set[int] = set()
        self._last_message_id: dict[int, int] = {}
        self._next_update_id = 1

    @property
    def me(self) -> dict[str, Any]:
        """The bot as a ``User`` object."""
        return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def commands_for(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, str]]:
        """The commands set for ``scope`` (default: ``{"type": "default"}``) and ``language_code``."""
        scope = scope or {"type": "default"}
        return list(self.command_lists.get((commands_key(scope), language_code), []))

    @property
    def all_commands(self) -> dict[tuple[str, str], list[dict[str, str]]]:
        """Every ``setMyCommands`` list, by (scope as canonical JSON, language code)."""
        return {key: list(value) for key, value in self.command_lists.items()}

    def menu_button(self, chat: TelegramUser | int | None = None) -> dict[str, Any]:
        """What ``getChatMenuButton`` answers: the button chosen for ``chat`` (``{"type": "default"}``
        if none), or without ``chat`` the bot's own (``{"type": "commands"}`` until one is set)."""
        key = chat.id if isinstance(chat, TelegramUser) else chat
        fallback = {"type": "commands"} if key is None else {"type": "default"}
        return copy.deepcopy(self.menu_buttons.get(key, fallback))

    def menu_button_shown(self, chat: TelegramUser | int) -> dict[str, Any]:
        """The menu button the person sees in their chat with the bot: the one chosen for the chat,
        else the bot's own, else the commands list."""
        key = chat.id if isinstance(chat, TelegramUser) else chat
        return copy.deepcopy(self.menu_buttons.get(key) or self.menu_button())

    def knows_user(self, user_id: int) -> bool:
        """Whether the bot has met this person: a chat with them, or a message or a tap from them anywhere."""
        if self.chats.get(user_id, {}).get("type") == "private":
            return True
        if any(query["user_id"] == user_id for query in self.queries.values()):
            return True
        return any(message.get("from", {}).get("id") == user_id for message in self.messages.values())

    @property
    def pending_updates(self) -> int:
        return len(self.updates)

    def fail_next(self, n: int = 1, retry_after: int = 1, methods: Iterable[str] = SEND_METHODS) -> None:
        """The next ``n`` requests to one of ``methods`` answer 429 ``retry_after`` (and deliver nothing)."""
        self.flood.fail_next(n, retry_after, methods)

    # -- chats and messages -----------------------------------------------------------------

    def meet(self, user: TelegramUser) -> None:
        """Make ``user``'s private chat known, as if they had opened the bot before (no update)."""
        self.chats[user.id] = user.private_chat()

    def block(self, user: TelegramUser | int) -> None:
        """The person blocks the bot: sending to them answers 403 until they write to it again."""
        self._blocked.add(user.id if isinstance(user, TelegramUser) else user)

    def find_chat(self, raw: Any, *, blocked_ok: bool = False) -> dict[str, Any]:
        """The known chat ``raw`` names (an id or ``@username``); 400 if none, 403 if blocked."""
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        chat: dict[str, Any] | None = None
        if isinstance(raw, str) and raw.startswith("@"):
            wanted = raw[1:].lower()
            chat = next((c for c in self.chats.values() if str(c.get("username", "")).lower() == wanted), None)
        else:
            chat_id = as_int(raw, "chat_id")
            chat = self.chats.get(chat_id) if chat_id is not None else None
        if chat is None:
            raise bad_request("chat not found")
        if chat["id"] in self._blocked and not blocked_ok:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def add_message(self, chat: dict[str, Any], sender: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        """A new message in ``chat`` from ``sender`` (a ``User``), numbered in the chat's sequence."""
        chat_id = chat["id"]
        self._last_message_id[chat_id] = message_id = self._last_message_id.get(chat_id, 0) + 1
        message = {"message_id": message_id, "from": sender, "chat": dict(chat), "date": now_unix()} | content
        self.messages[(chat_id, message_id)] = message
        return message

    # -- updates ----------------------------------------------------------------------------

    async def push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update ``{"update_id": N, kind: payload}`` for ``getUpdates``."""
        update = {"update_id": self._next_update_id, kind: copy.deepcopy(payload)}
        self._next_update_id += 1
        self.updates.append(update)
        self.mark()
        self.updates_signal.pulse()
        return update

    def confirm(self, offset: int) -> None:
        """Forget the updates an ``offset`` confirms (``getUpdates`` semantics, negative included)."""
        if offset > 0:
            while self.updates and self.updates[0]["update_id"] < offset:
                self.updates.popleft()
        elif offset < 0:
            while len(self.updates) > -offset:
                self.updates.popleft()
        self.updates_signal.pulse()

    def end_polls(self) -> None:
        """Answer every waiting long poll now (and later ones at once): the server is stopping."""
        self.closing = True
        self.updates_signal.pulse()

    def _wait_notes(self) -> list[str]:
        notes = []
        if self.errors:
            notes.append(f"The stand-in itself failed {len(self.errors)} times: {self.errors[-1]!r}")
        if self.updates:
            notes.append(f"{len(self.updates)} updates are still waiting for the bot to fetch them.")
        return notes

    # -- the people's side ------------------------------------------------------------------

    def _chat_of(self, user: TelegramUser, chat: int | None) -> dict[str, Any]:
        if chat is None or chat == user.id:
            found = user.private_chat()
        elif chat < 0:
            kind = "supergroup" if str(chat).startswith("-100") else "group"
            found = self.chats.get(chat) or {"id": chat, "title": f"Group {-chat}", "type": kind}
        else:
            raise ValueError(f"chat {chat}: a private chat's id is its user's id; pass a group id (< 0)")
        self.chats[found["id"]] = found
        if found["id"] == user.id:
            self._blocked.discard(user.id)  # writing to the bot again unblocks it
        return found

    async def _user_sends(self, user: TelegramUser, chat: int | None, content: dict[str, Any]) -> dict[str, Any]:
        message = self.add_message(self._chat_of(user, chat), user.to_dict(), content)
        await self.push_update("message", message)
        return message

    async def user_says(self, user: TelegramUser, text: str, *, chat: int | None = None) -> dict[str, Any]:
        """``user`` sends ``text`` (typed or pasted) in their private chat (or the group ``chat``);
        returns the ``Message``. Commands (``/start``, ``/days@paygbot_demo_bot``) get
        ``bot_command`` entities."""
        if not text.strip():
            raise ValueError("Telegram clients do not send empty messages")
        content: dict[str, Any] = {"text": text}
        if entities := command_entities(text):
            content["entities"] = entities
        return await self._user_sends(user, chat, content)

    async def user_forwards(
        self, user: TelegramUser, text: str, *, origin: TelegramUser | str | None = None, chat: int | None = None
    ) -> dict[str, Any]:
        """``user`` forwards a message with ``text`` that ``origin`` wrote (a user, or the name of
        one who hides their account; default: a hidden "Unknown")."""
        when = now_unix() - 60
        if isinstance(origin, TelegramUser):
            forward: dict[str, Any] = {"type": "user", "date": when, "sender_user": origin.to_dict()}
        else:
            forward = {"type": "hidden_user", "date": when, "sender_user_name": origin or "Unknown"}
        content: dict[str, Any] = {"forward_origin": forward, "text": text}
        if entities := command_entities(text):
            content["entities"] = entities
        return await self._user_sends(user, chat, content)

    async def user_shares_contact(
        self,
        user: TelegramUser,
        phone: str,
        contact_user_id: int | None | object = _SELF,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        chat: int | None = None,
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
        return await self._user_sends(user, chat, {"contact": contact})

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
        current = self.messages.get((chat_id, seen["message_id"]))
        if current is None:
            raise ValueError(f"message {seen['message_id']} in chat {chat_id} is unknown: nothing to tap")
        query_id = str(secrets.randbits(62))
        query = {
            "id": query_id,
            "from": user.to_dict(),
            "message": copy.deepcopy(current),
            "chat_instance": str(int.from_bytes(hashlib.sha256(f"{self.bot_id}:{chat_id}".encode()).digest()[:7])),
            "data": chosen["callback_data"],
        }
        self.queries[query_id] = {"user_id": user.id, "chat_id": chat_id, "message_id": seen["message_id"],
                                  "answered": False}  # fmt: skip
        await self.push_update("callback_query", query)
        return query


def commands_key(scope: dict[str, Any]) -> str:
    """A command scope as the key its list is kept under (canonical JSON)."""
    return json.dumps(scope, sort_keys=True, separators=(",", ":"))
