"""The Bot API methods the bot calls, on the chat state of :class:`FakeBotApi`: each request as
both transports hand it over (a token, a method name, the raw parameters) becomes the answer's
HTTP status and JSON body. Only what the bot (and PTB under it) uses is here: ``getMe``, long
polling (``getUpdates``, ``deleteWebhook``), ``setMyCommands``, the menu button
(``setChatMenuButton``, ``getChatMenuButton``: :mod:`~bot.standins.telegram.webapps`), posting and
editing messages, and answering button taps.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import mimetypes
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from bot.standins.telegram import content
from bot.standins.telegram.chats import FakeBotApi, commands_key, now_unix
from bot.standins.telegram.values import BotApiError, CallbackAnswer, bad_request
from bot.standins.telegram.webapps import MenuButtonMethods
from bot.standins.telegram.webhook import Webhook
from bot.standins.telegram.wire import as_bool, as_int, as_json, decode_params

_log = logging.getLogger(__name__)

NOT_MODIFIED: Final = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
QUERY_TOO_OLD: Final = "query is too old and response timeout expired or query ID is invalid"
CONFLICT: Final = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
WEBHOOK_CONFLICT: Final = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
WEBHOOK_SECRET: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")

_BOT_COMMAND_NAME: Final = re.compile(r"[a-z0-9_]{1,32}")

_Method = Callable[[dict[str, Any]], Awaitable[Any]]


def _set_or_drop(message: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        message.pop(key, None)
    else:
        message[key] = value


class BotApiMethods:
    """Answers Bot API requests against one :class:`FakeBotApi`."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        menus = MenuButtonMethods(api)
        methods: dict[str, _Method] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "setChatMenuButton": menus.set_chat_menu_button,
            "getChatMenuButton": menus.get_chat_menu_button,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
        }
        # Method names are case-insensitive in the Bot API.
        self._methods = {name.lower(): (name, method) for name, method in methods.items()}

    def refusal(self, token: str, method: str) -> BotApiError | None:
        """Why a request to ``method`` with ``token`` is refused before its parameters are read."""
        if not secrets.compare_digest(token.encode(), self.api.token.encode()):
            return BotApiError(401, "Unauthorized")
        if method.lower() not in self._methods:
            return BotApiError(404, "Not Found: method not found")
        return None

    async def call(self, token: str, method: str, raw: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """One request: the HTTP status and the JSON body Telegram would answer with."""
        api = self.api
        if (refused := self.refusal(token, method)) is not None:
            return self._refused(refused)
        name, handler = self._methods[method.lower()]
        try:
            params = decode_params(raw)
            api.flood.play_forced(name)
            result = await handler(params)
        except BotApiError as error:
            return self._refused(error)
        except Exception as exc:  # noqa: BLE001 - a bug here must not look like a network failure
            _log.exception("the Bot API stand-in failed on %s", name)
            api.errors.append(exc)
            return self._refused(BotApiError(500, f"Internal Server Error: {type(exc).__name__}: {exc}"))
        return 200, {"ok": True, "result": result}

    def _refused(self, error: BotApiError) -> tuple[int, dict[str, Any]]:
        if error.error_code == 429:
            self.api.rate_limited += 1
        return error.error_code, error.envelope()

    # -- the bot and its updates ------------------------------------------------------------

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.api.me | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.api.webhook = None
        await self.api.webhook_delivery.stop()
        if as_bool(params.get("drop_pending_updates")):
            self.api.updates.clear()
            self.api.updates_signal.pulse()
        return True

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        """Updates go to ``url`` from now on (``getUpdates`` is refused while it is set)."""
        url = str(params.get("url") or "")
        if not url:  # Telegram: an empty URL removes the webhook
            return await self._delete_webhook(params)
        if not url.startswith(("https://", "http://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not WEBHOOK_SECRET.fullmatch(str(secret)):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        allowed = as_json(params.get("allowed_updates"), "allowed_updates") if "allowed_updates" in params else None
        if allowed is not None and not (isinstance(allowed, list) and all(isinstance(k, str) for k in allowed)):
            raise bad_request("can't parse allowed updates")
        connections = as_int(params.get("max_connections"), "max_connections", default=40) or 40
        if as_bool(params.get("drop_pending_updates")):
            self.api.updates.clear()
        self.api.webhook = Webhook(url, None if secret is None else str(secret), allowed,
                                   max(1, min(100, connections)))
        self.api.poll_generation += 1  # a waiting long poll ends (409), as at Telegram
        self.api.updates_signal.pulse()
        self.api.webhook_delivery.start()
        return True

    async def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        hook = self.api.webhook
        info: dict[str, Any] = {"url": hook.url if hook else "", "has_custom_certificate": False,
                                "pending_update_count": len(self.api.updates)}
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.allowed_updates is not None:
                info["allowed_updates"] = hook.allowed_updates
            if hook.failures:
                info["last_error_date"], info["last_error_message"] = now_unix(), hook.failures[-1]
        return info

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Long polling: what is queued past ``offset``, or the first update within ``timeout``.
        Telegram ends an older long poll when a newer one arrives (409 to the older)."""
        api = self.api
        if api.webhook is not None:
            raise BotApiError(409, WEBHOOK_CONFLICT)
        offset = as_int(params.get("offset"), "offset", default=0) or 0
        limit = min(100, max(1, as_int(params.get("limit"), "limit", default=100) or 100))
        try:
            wait = max(0.0, float(params.get("timeout") or 0))
        except (TypeError, ValueError):
            raise bad_request("invalid timeout specified") from None
        api.confirm(offset)
        api.poll_generation += 1
        generation = api.poll_generation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        api.waiting_polls += 1
        try:
            while True:
                if generation != api.poll_generation:
                    raise BotApiError(409, CONFLICT)
                batch = list(itertools.islice(api.updates, limit))
                remaining = deadline - loop.time()
                if batch or api.closing or remaining <= 0:
                    return batch
                await api.updates_signal.wait(remaining)
        finally:
            api.waiting_polls -= 1

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = as_json(params.get("commands"), "commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        cleaned = []
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand JSON object")
            name = str(command.get("command", "")).removeprefix("/")
            description = str(command.get("description", ""))
            if not _BOT_COMMAND_NAME.fullmatch(name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description.strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": name, "description": description})
        scope = params.get("scope")
        scope = as_json(scope, "scope") if scope not in (None, "") else {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise bad_request("can't parse BotCommandScope JSON object")
        if scope["type"] in ("chat", "chat_administrators", "chat_member"):
            # Telegram refuses a scope naming a chat that never talked to the bot.
            scope = {**scope, "chat_id": self.api.find_chat(scope.get("chat_id"), blocked_ok=True)["id"]}
        key = (commands_key(scope), str(params.get("language_code") or ""))
        if cleaned:
            self.api.command_lists[key] = cleaned
        else:
            self.api.command_lists.pop(key, None)
        return True

    # -- messages ---------------------------------------------------------------------------

    def _post(
        self, method: str, chat: dict[str, Any], params: dict[str, Any], shown: dict[str, Any], **record: Any
    ) -> dict[str, Any]:
        """Post a new message from the bot (once the flood limits allow it) and record it."""
        api = self.api
        found = content.markup(params, chat)
        api.flood.admit(chat["id"])
        if (keyboard := content.inline(found)) is not None:
            shown["reply_markup"] = keyboard
        message = api.add_message(chat, api.me, shown)
        api.record(method, message, params, markup=found, **record)
        return message

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.api.find_chat(params.get("chat_id"))
        text = params.get("text")
        rendered, entities = content.formatted(text, params)
        shown: dict[str, Any] = {"text": rendered} | ({"entities": entities} if entities else {})
        return self._post("sendMessage", chat, params, shown, text=text, rendered=rendered, entities=entities)

    def _caption(self, params: dict[str, Any]) -> tuple[str | None, str, list[dict[str, Any]], dict[str, Any]]:
        caption = params.get("caption")
        rendered, entities = content.formatted(caption, params, caption=True)
        shown: dict[str, Any] = {}
        if caption:
            shown["caption"] = rendered
            if entities:
                shown["caption_entities"] = entities
        return caption or None, rendered, entities, shown

    async def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.api.find_chat(params.get("chat_id"))
        upload = content.upload(params, "photo")
        sizes = content.photo_sizes(upload.data)
        caption, rendered, entities, shown = self._caption(params)
        return self._post(
            "sendPhoto", chat, params, {"photo": sizes} | shown,
            text=caption, rendered=rendered if caption else None, entities=entities,
            photo=upload.data, filename=upload.filename, mime_type="image/jpeg",
        )  # fmt: skip

    async def _send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.api.find_chat(params.get("chat_id"))
        upload = content.upload(params, "document")
        caption, rendered, entities, shown = self._caption(params)
        filename = upload.filename
        mime_type = upload.content_type if upload.content_type != "application/octet-stream" else None
        mime_type = mime_type or (mimetypes.guess_type(filename)[0] if filename else None) or "application/octet-stream"
        document = content.file_ids("BQACAgIAAxkDAAI", upload.data)
        document |= ({"file_name": filename} if filename else {}) | {"mime_type": mime_type, "file_size": len(upload.data)}
        return self._post(
            "sendDocument", chat, params, {"document": document} | shown,
            text=caption, rendered=rendered if caption else None, entities=entities,
            document=upload.data, filename=filename, mime_type=mime_type,
        )  # fmt: skip

    def _editable(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.api.find_chat(params.get("chat_id"))
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        message_id = as_int(params.get("message_id"), "message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = self.api.messages.get((chat["id"], message_id))
        if message is None:
            raise bad_request("message to edit not found")
        if message.get("from", {}).get("id") != self.api.bot_id:
            raise bad_request("message can't be edited")
        return message

    def _edited(self, method: str, message: dict[str, Any], params: dict[str, Any], **record: Any) -> dict[str, Any]:
        message["edit_date"] = now_unix()
        self.api.record(method, message, params, **record)
        return copy.deepcopy(message)

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._editable(params)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        text = params.get("text")
        rendered, entities = content.formatted(text, params)
        found = content.markup(params, message["chat"])
        keyboard = content.inline(found)
        # Without reply_markup, editing the text removes the inline keyboard.
        if (rendered, entities, keyboard) == (message["text"], message.get("entities", []), message.get("reply_markup")):
            raise bad_request(NOT_MODIFIED)
        message["text"] = rendered
        _set_or_drop(message, "entities", entities or None)
        _set_or_drop(message, "reply_markup", keyboard)
        return self._edited(
            "editMessageText", message, params, text=text, rendered=rendered, entities=entities, markup=found
        )

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._editable(params)
        found = content.markup(params, message["chat"])
        keyboard = content.inline(found)
        if keyboard == message.get("reply_markup"):
            raise bad_request(NOT_MODIFIED)
        _set_or_drop(message, "reply_markup", keyboard)
        shown = message.get("text", message.get("caption"))
        entities = list(message.get("entities", message.get("caption_entities", [])))
        return self._edited(
            "editMessageReplyMarkup", message, params, text=None, rendered=shown, entities=entities, markup=found
        )

    async def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        query = self.api.queries.get(query_id)
        if query is None or query["answered"]:
            raise bad_request(QUERY_TOO_OLD)
        query["answered"] = True
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.api.record_answer(CallbackAnswer(
            callback_query_id=query_id, user_id=query["user_id"], chat_id=query["chat_id"],
            message_id=query["message_id"], text=str(text) if text else None,
            show_alert=as_bool(params.get("show_alert")),
        ))  # fmt: skip
        return True

