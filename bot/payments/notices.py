"""Telling people in the chat what became of a payment: the managers of money kept for them (with a
button per device it may be for), the customer and their agent of days that wait. The payments
service calls :class:`ChatNotices` as its notifier; a failure raises, and the notice is tried again.
"""

from __future__ import annotations

from collections.abc import Callable

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup

from bot.clock import Clock
from bot.config import Settings
from bot.delivery import speak_to
from bot.payments import matching
from bot.texts import Texts
from storage import ledger
from storage.db import Database
from storage.models import Device, Payment, PaymentNotice, Role, Status


class ChatNotices:
    """The payments' notifier, sending through the bot: managers of kept money, customers of a wait."""

    def __init__(self, bot: Bot, db: Database, settings: Settings, clock: Clock) -> None:
        self.bot, self.db, self.settings, self.clock = bot, db, settings, clock

    async def __call__(self, payment: Payment) -> None:
        if payment.notice is PaymentNotice.MANAGERS:
            await self._managers(payment)
        elif payment.notice is PaymentNotice.RECEIVED:
            await self._received(payment)

    async def _managers(self, payment: Payment) -> None:
        devices = await matching.candidates(self.db, payment, self.settings.phone_region)
        async with self.db.read() as session:
            people = await ledger.active_people(session=session)
            first = None
            if payment.duplicate_of is not None:
                first = await ledger.get_payment(session=session, payment_id=payment.duplicate_of)
        details = dict(
            reference=payment.reference, amount=payment.amount, currency=payment.currency, account=payment.account,
            payer=payment.payer, phone=payment.phone, provider=payment.provider, reason=payment.reason or "",
            device=next((d.label for d in devices if d.id == payment.device_id), None),
            first=(first.amount, first.currency, first.account, first.provider) if first is not None else None,
        )
        for person in people:
            if person.role is Role.MANAGER:
                await self._send(person.telegram_id, lambda t: t.payment_kept_notice(**details),
                                 lambda t: assign_buttons(payment, devices, t))

    async def _received(self, payment: Payment) -> None:
        assert payment.id is not None and payment.device_id is not None
        async with self.db.read() as session:
            device = await ledger.get_device(session=session, device_id=payment.device_id)
            request = await ledger.request_for_payment(session=session, payment_id=payment.id)
            customer = agent = None
            if device is not None and device.customer_id is not None:
                customer = await ledger.get_customer(session=session, customer_id=device.customer_id)
            if customer is not None and customer.registered_by_id is not None:
                agent = await ledger.person_by_id(session=session, person_id=customer.registered_by_id)
        if device is None:
            return
        now = self.clock.now()
        waits_until = None
        if request is not None and request.status is Status.QUEUED and request.not_before > now:
            waits_until = request.not_before
        words = dict(
            reference=payment.reference, amount=payment.amount, currency=payment.currency, device=device.label,
            days=payment.days, prepaid=payment.prepaid_days, credit_left=payment.credit_left,
            price=device.daily_price, waits_until=waits_until, tz=self.settings.tz,
        )
        sent: set[int] = {payment.chat_id} if payment.chat_id is not None else set()
        if customer is not None and customer.chat_id is not None and customer.chat_id not in sent:
            sent.add(customer.chat_id)
            await self._send(customer.chat_id, lambda t: t.payment_received_notice(for_customer=True, **words))
        if agent is not None and agent.active and agent.telegram_id not in sent:
            await self._send(agent.telegram_id, lambda t: t.payment_received_notice(for_customer=False, **words))

    async def _send(self, chat_id: int, words: Callable[[Texts], str],
                    markup: Callable[[Texts], InlineKeyboardMarkup | None] | None = None) -> None:
        await speak_to(self.bot, self.db, chat_id, words, sandbox=self.settings.uses_sandbox, markup=markup,
                       unreachable="payment notice")


def assign_buttons(payment: Payment, candidates: list[Device], words: Texts) -> InlineKeyboardMarkup | None:
    """One button per device the money may be for (``pay:asg:<payment>:<device>``)."""
    rows = [[InlineKeyboardButton(words.assign_button(device.label), callback_data=f"pay:asg:{payment.id}:{device.id}")]
            for device in candidates]
    return InlineKeyboardMarkup(rows) if rows else None
