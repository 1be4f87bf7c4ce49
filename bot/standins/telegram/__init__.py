"""The Telegram Bot API stand-in: the real python-telegram-bot runs against it unmodified.

Split by what it does:

- the chat state: :mod:`~bot.standins.telegram.chats` (:class:`FakeBotApi`: the bot, its chats,
  their messages, the updates waiting for ``getUpdates``, and the people's side —
  :meth:`~FakeBotApi.user_says`, :meth:`~FakeBotApi.user_taps`…), built on
  :mod:`~bot.standins.telegram.outbox` (what the bot sent, :meth:`~FakeBotApi.wait_for`);
- the Bot API methods on that state: :mod:`~bot.standins.telegram.methods`, with what Telegram
  checks in a message (:mod:`~bot.standins.telegram.content`), HTML parsed as Telegram parses it
  (:mod:`~bot.standins.telegram.html`), its flood limits (:mod:`~bot.standins.telegram.flood`), and
  Mini Apps (:mod:`~bot.standins.telegram.webapps`: Web App URLs, the menu button);
- the transport: :mod:`~bot.standins.telegram.wire` (the Bot API's wire format), then either
  :class:`StandInRequest` (a PTB ``BaseRequest`` in this process: no port, no server) or
  :mod:`bot.standins.telegram.server` (loopback HTTP, for a bot in another process).
- webhook mode: :mod:`~bot.standins.telegram.webhook` (after ``setWebhook``, updates are POSTed to the
  bot with the secret header, and ``getUpdates`` is refused with 409, as at Telegram).

What it checks is what Telegram checks and a bot can get wrong: unknown or blocked chats, empty or
too long texts and captions, HTML that Telegram would refuse (and, stricter, an unescaped ``&`` or
``>``), oversized ``callback_data``, ``web_app`` buttons (HTTPS, private chats only) and menu
buttons, edits that change nothing, answers to unknown callback queries, and the flood limits (429
with ``retry_after``) when they are switched on. It answers only the methods this bot calls.
"""

from bot.standins.telegram.chats import FakeBotApi
from bot.standins.telegram.html import HtmlError, parse_html
from bot.standins.telegram.transport import StandInRequest
from bot.standins.telegram.values import BotApiError, CallbackAnswer, Sent, TelegramUser, WaitTimeout

__all__ = [
    "BotApiError",
    "CallbackAnswer",
    "FakeBotApi",
    "HtmlError",
    "Sent",
    "StandInRequest",
    "TelegramUser",
    "WaitTimeout",
    "parse_html",
]
