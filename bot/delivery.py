"""Hand an issued code to the people it is for; tell the requester of a refusal; send summaries.

The engine calls :class:`Delivery` for every finished request until it succeeds, so it
raises on a failure worth retrying (the network, Telegram's flood control) and returns
quietly when retrying cannot help (the person blocked the bot, the chat is gone). It is also
called once for a request still SENDING after a day: a warning, sent to each reader best effort.

A text Telegram cannot parse (400 "can't parse entities") is sent again as plain text, so the person
still reads it; one Telegram refuses even so is not delivered, and whoever asked is told.
"""

from __future__ import annotations

import html
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from telegram import Bot, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, TelegramError

from bot import reports
from bot.clock import Clock
from bot.config import Settings
from bot.people import reader_in, reader_of
from bot.plans.service import receipt_balance
from bot.texts import Texts, for_language
from storage import ledger
from storage.db import Database
from storage.models import CodeRequest, Customer, Device, Status

log = logging.getLogger("paygbot.delivery")

_TAG = re.compile(r"</?(?:a|b|strong|i|em|u|ins|s|strike|del|code|pre|span|tg-spoiler|tg-emoji|blockquote)\b[^<>]*>",
                  re.IGNORECASE)
AHEAD_KEPT = 1000
"""Issued codes whose readers :meth:`Delivery.read_ahead` keeps at most (each is taken by its delivery at once)."""
_CHAT_GONE = ("chat not found", "peer_id_invalid", "user not found")
"""What a 400 says when the chat itself is not there (as unreachable as a 403)."""


class Spoken(StrEnum):
    """What became of a message :func:`speak_to` was asked to send."""

    SENT = "sent"
    UNREACHABLE = "unreachable"
    """The person blocked the bot or the chat is gone: logged and left."""
    REVOKED = "revoked"
    """Not sent: the person's role was taken away (``unless_revoked``)."""
    REFUSED = "refused"
    """Telegram refused the text itself, even as plain text: logged; whoever asked should be told."""


def as_plain(text: str) -> str:
    """An HTML message as its reader would have seen it: the tags dropped, ``&amp;`` and the like decoded."""
    return html.unescape(_TAG.sub("", text))


def unparsable(exc: TelegramError) -> bool:
    """Telegram's 400 for HTML it cannot parse (a bug in a sentence or a translation, not the chat)."""
    return isinstance(exc, BadRequest) and "can't parse entities" in exc.message.lower()


async def send_text(bot: Bot, chat_id: int, text: str, **options: Any) -> None:
    """Send an HTML text; one Telegram cannot parse goes again as plain text, so that the person still
    reads it (a code must not be lost to a stray tag). Any other failure raises."""
    try:
        await bot.send_message(chat_id, text, **options)
    except BadRequest as exc:
        if not unparsable(exc):
            raise
        log.error("chat %s: Telegram could not parse a message (%s); sending it again as plain text", chat_id,
                  exc.message)
        await bot.send_message(chat_id, as_plain(text), **{**options, "parse_mode": None})


async def speak_to(bot: Bot, db: Database, chat_id: int, words: Callable[[Texts], str], *, sandbox: bool,
                   markup: Callable[[Texts], InlineKeyboardMarkup | None] | None = None,
                   unreachable: str | None = None, unless_revoked: bool = False,
                   reader: tuple[str, bool] | None = None) -> Spoken:
    """Send to a chat in its owner's language (kept in the ledger), when they did not just write: a
    customer reads the code an agent asked for in theirs, each manager a notice in theirs.

    With ``unreachable`` (what is being sent, for the log), a chat that cannot be reached (the person
    blocked the bot, the chat is gone), or a text Telegram refuses even as plain text, is logged and
    left: retrying cannot help; the answer says which, so that the caller can tell whoever asked.
    Without it, every failure raises. ``unless_revoked``: nothing is sent to a person whose role was
    taken away (what they asked for while they had it). ``reader``: :func:`reader_of` the chat, when the
    caller read it in a transaction of its own already."""
    language, revoked = reader if reader is not None else await reader_of(db, chat_id)
    if unless_revoked and revoked:
        log.warning("%s: not sent to chat %s, whose role was taken away", unreachable or "message", chat_id)
        return Spoken.REVOKED
    them = for_language(language)
    try:
        await send_text(bot, chat_id, them.with_sandbox_note(words(them), sandbox),
                        reply_markup=markup(them) if markup else None)
    except (Forbidden, BadRequest) as exc:
        if unreachable is None:
            raise
        if isinstance(exc, Forbidden) or any(gone in exc.message.lower() for gone in _CHAT_GONE):
            log.warning("%s: chat %s cannot be reached (%s); not retrying", unreachable, chat_id, exc.message)
            return Spoken.UNREACHABLE
        log.error("%s: Telegram refused the message to chat %s (%s); not delivered", unreachable, chat_id,
                  exc.message)
        return Spoken.REFUSED
    return Spoken.SENT


def _refusal(words: Texts, request: CodeRequest, tz: ZoneInfo) -> str:
    """A refusal found after the request was queued: the ERM's (its own words), or ours when two ledger
    rows turned out to be one device and the days no longer fit (``stacking``, with ``refused_fits``)."""
    if request.reason == "stacking" and request.refused_fits is not None:
        return words.refused("stacking", request.device_ref, fits=request.refused_fits, tz=tz)
    return words.refused("erm_refused", request.device_ref, words=request.reason, tz=tz)


@dataclass(frozen=True)
class _Readers:
    """Who reads an issued code, as one read finds them: the device's customer, and the languages (and whether
    their role was taken away) of the agent who asked and of the customer, where the code goes to them."""

    customer: Customer | None
    asker: tuple[str, bool] | None
    customer_reader: tuple[str, bool] | None

    @staticmethod
    async def read(session: ledger.AsyncSession, request: CodeRequest, customer: Customer | None) -> _Readers:
        asker = customer_reader = None
        if request.payment_id is None and request.chat_id is not None:
            asker = await reader_in(session, request.chat_id)
            if customer is not None and customer.chat_id is not None and customer.chat_id != request.chat_id:
                customer_reader = await reader_in(session, customer.chat_id)
        return _Readers(customer, asker, customer_reader)


class Delivery:
    """The engine's notifier, sending through the bot."""

    def __init__(self, bot: Bot, db: Database, settings: Settings) -> None:
        self.bot, self.db, self.settings = bot, db, settings
        self._ahead: OrderedDict[int, _Readers] = OrderedDict()

    async def read_ahead(self, session: ledger.AsyncSession, request: CodeRequest, device: Device) -> None:
        """In the transaction that records an issued code: who will read it, kept for :meth:`_issued` (which reads
        them itself if that transaction did not commit, and for a later try)."""
        assert request.id is not None
        customer = None
        if device.customer_id is not None:
            customer = await ledger.get_customer(session=session, customer_id=device.customer_id)
        self._ahead[request.id] = await _Readers.read(session, request, customer)
        while len(self._ahead) > AHEAD_KEPT:  # (a transaction that failed after reading leaves its entry)
            self._ahead.popitem(last=False)

    async def __call__(self, request: CodeRequest) -> None:
        if request.status is Status.SENDING:
            await self._unsettled(request)
        elif request.status in (Status.ISSUED, Status.DELIVERED):
            await self._issued(request)
        elif request.chat_id is not None:
            tz = self.settings.tz
            await self._send(request.chat_id, request, lambda t: t.failed(request.device_ref, request.reason)
                             if request.status is Status.FAILED else _refusal(t, request, tz))

    async def _issued(self, request: CodeRequest) -> None:
        assert request.code is not None
        details: dict[str, Any] = {
            "device": request.device_ref, "kind": request.kind.value, "days": request.days, "code": request.code,
            "credit_until": request.credit_until, "tz": self.settings.tz,
        }
        readers = self._ahead.pop(request.id, None) if request.id is not None else None
        if readers is None:
            async with self.db.read() as session:  # (the languages too: one read for the usual code)
                customer = await ledger.customer_of_device(session=session, device_id=request.device_id)
                readers = await _Readers.read(session, request, customer)
        customer = readers.customer
        if request.payment_id is not None:
            await self._paid(request, details, customer)
            return
        if request.chat_id is not None:
            await self._send(request.chat_id, request, lambda t: t.code_issued(**details), reader=readers.asker)
        if customer is not None and customer.chat_id is not None and customer.chat_id != request.chat_id:
            await self._send(customer.chat_id, request, lambda t: t.customer_code(**details),
                             requesters=[request.chat_id], customer=customer, reader=readers.customer_reader)

    async def _paid(self, request: CodeRequest, details: dict[str, Any], customer: Customer | None) -> None:
        """A payment's code: to the customer, the agent who registered them, and whoever recorded or
        assigned the payment — each once, with the amount and the new credit-until."""
        assert request.payment_id is not None
        async with self.db.read() as session:
            payment = await ledger.get_payment(session=session, payment_id=request.payment_id)
            agent = None
            if customer is not None and customer.registered_by_id is not None:
                agent = await ledger.person_by_id(session=session, person_id=customer.registered_by_id)
        assert payment is not None
        paid = {"reference": payment.reference, "amount": payment.amount, "currency": payment.currency,
                "balance": await receipt_balance(self.db, payment), "owed_paid": payment.owed_paid or 0}
        staff = [request.chat_id, payment.chat_id, agent.telegram_id if agent is not None and agent.active else None]
        requesters = [request.chat_id, payment.chat_id] if request.chat_id or payment.chat_id else staff
        told: set[int] = set()
        if customer is not None and customer.chat_id is not None:
            told.add(customer.chat_id)
            await self._send(customer.chat_id, request, lambda t: t.paid_code(for_customer=True, **paid, **details),
                             requesters=requesters, customer=customer)
        for chat_id in staff:
            if chat_id is not None and chat_id not in told:
                told.add(chat_id)
                await self._send(chat_id, request, lambda t: t.paid_code(for_customer=False, **paid, **details),
                                 requesters=requesters, customer=customer)

    async def _unsettled(self, request: CodeRequest) -> None:
        """A day without the ERM saying whether it made the code: whoever asked, and the managers."""
        async with self.db.read() as session:
            managers = await ledger.managers(session=session)
        readers = dict.fromkeys([request.chat_id, *(manager.telegram_id for manager in managers)])
        tz = self.settings.tz
        for chat_id in readers:
            if chat_id is None:
                continue
            try:  # one unreachable reader must not keep the warning from the others
                await self._send(chat_id, request, lambda t: t.unsettled(request.device_ref, request.created_at, tz))
            except TelegramError as exc:
                log.warning("request %s: chat %s not warned (%s)", request.id, chat_id, exc.message)

    async def _send(self, chat_id: int, request: CodeRequest, words: Callable[[Texts], str], *,
                    requesters: Iterable[int | None] = (), customer: Customer | None = None,
                    reader: tuple[str, bool] | None = None) -> None:
        """Send one reader their message; if Telegram refuses its text even as plain text, tell
        ``requesters`` (whoever asked for the code or recorded the payment) that it did not arrive.
        Never into a group (a chat linked before codes went to private chats only), never to someone
        whose role was taken away since they asked."""
        if chat_id < 0:
            log.warning("request %s: not sent to chat %s, a group", request.id, chat_id)
            return
        spoken = await speak_to(self.bot, self.db, chat_id, words, sandbox=self.settings.uses_sandbox,
                                unreachable=f"request {request.id}", unless_revoked=True, reader=reader)
        if spoken is not Spoken.REFUSED:
            return
        name = customer.name if customer is not None and customer.chat_id == chat_id else None
        for requester in dict.fromkeys(requesters):
            if requester is not None and requester != chat_id:
                await speak_to(self.bot, self.db, requester, lambda t: t.not_delivered(request.device_ref, name),
                               sandbox=self.settings.uses_sandbox, unreachable=f"request {request.id}: not delivered")



class SummarySource(Protocol):
    """What a summary is made from: the ledger, the clock and the settings (``bot.services.Services`` has them)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def clock(self) -> Clock: ...


async def send_summary(bot: Bot, source: SummarySource, chat_id: int, day: date, words: Texts) -> None:
    """The summary of a local day, then its chart (for /summary), in ``words``' language."""
    await send_summaries(bot, source, [(chat_id, words)], day)


async def send_summaries(bot: Bot, source: SummarySource, readers: list[tuple[int, Texts]], day: date) -> None:
    """The summary of a local day to each reader, in their language: every text first, then the charts (one
    drawing per language), so that no reader's text waits for a picture. A chat that refuses (blocked the bot,
    gone) is logged and skipped."""
    settings = source.settings
    tz = settings.tz
    figures = await reports.summary(source.db, day, tz, source.clock.now(), confirmations=settings.mpesa_path is not None)
    told: list[tuple[int, Texts]] = []
    for chat_id, words in readers:
        text = words.summary_text(figures, tz, source.clock.now())
        if await _summary_part(bot.send_message(chat_id, words.with_sandbox_note(text, settings.uses_sandbox)),
                               chat_id):
            told.append((chat_id, words))
    pictures: dict[str, bytes] = {}
    for chat_id, words in told:
        if words.language not in pictures:
            pictures[words.language] = await reports.chart(source.db, day, tz, words)
        await _summary_part(bot.send_photo(chat_id, pictures[words.language], caption=words.chart_labels()["title"]),
                            chat_id)


async def _summary_part(sending: Awaitable[object], chat_id: int) -> bool:
    try:
        await sending
    except (Forbidden, BadRequest) as exc:
        log.warning("summary not delivered to chat %s (%s)", chat_id, exc.message)
        return False
    return True
