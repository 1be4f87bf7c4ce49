"""Telling people in the chat what became of a payment: the managers of money kept for them (with a
button per device it may be for), the customer and their agent of days that wait. The payments
service calls :class:`ChatNotices` as its notifier; a failure raises, and the notice is tried again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup

from bot.clock import Clock
from bot.config import Settings
from bot.delivery import speak_to
from bot.payments import matching
from bot.plans.service import receipt_balance
from bot.texts import Texts
from storage import ledger
from storage.db import Database
from storage.models import ApprovalStatus, Customer, Device, Payment, PaymentNotice, PaymentStatus, Role, Status


class ChatNotices:
    """The payments' notifier, sending through the bot: managers of kept money, customers of a wait."""

    def __init__(self, bot: Bot, db: Database, settings: Settings, clock: Clock) -> None:
        self.bot, self.db, self.settings, self.clock = bot, db, settings, clock

    async def __call__(self, payment: Payment) -> None:
        if payment.notice is PaymentNotice.MANAGERS:
            await self._managers(payment)
        elif payment.notice is PaymentNotice.RECEIVED:
            await self._received(payment)
        elif payment.notice is PaymentNotice.PAID_OFF:
            await self._paid_off(payment)
        elif payment.notice is PaymentNotice.REVERSED:
            await self._reversed(payment)

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
            balance=await receipt_balance(self.db, payment), owed_paid=payment.owed_paid or 0,
        )
        sent: set[int] = {payment.chat_id} if payment.chat_id is not None else set()
        if customer is not None and customer.chat_id is not None and customer.chat_id not in sent:
            sent.add(customer.chat_id)
            await self._send(customer.chat_id, lambda t: t.payment_received_notice(for_customer=True, **words))
        if agent is not None and agent.active and agent.telegram_id not in sent:
            await self._send(agent.telegram_id, lambda t: t.payment_received_notice(for_customer=False, **words))

    async def _paid_off(self, payment: Payment) -> None:
        """A payment that paid its plan off: the managers (asked for the unlock code, with Approve / Reject,
        unless it goes out at once), the customer and their agent, and whoever recorded it."""
        assert payment.plan_id is not None and payment.device_id is not None
        people = await self._people_of(payment.device_id)
        async with self.db.read() as session:
            plan = await ledger.get_plan(session=session, plan_id=payment.plan_id)
            approval = None
            if plan is not None and plan.unlock_approval_id is not None:
                approval = await ledger.get_approval(session=session, approval_id=plan.unlock_approval_id)
            managers = await ledger.managers(session=session)
        if plan is None or people.device is None:
            return
        label, excess = people.device.label, payment.excess or Decimal(0)
        at_once = self.settings.unlock_when_paid == "auto"
        ask = approval is not None and approval.status is ApprovalStatus.PENDING
        paid = payment.plan_paid if payment.plan_paid is not None else plan.paid
        for manager in managers:
            await self._send(manager.telegram_id, lambda t: t.paid_off_managers(
                device=label, customer=people.customer.name if people.customer else None,
                reference=payment.reference, paid=paid, total=plan.total, currency=plan.currency, excess=excess,
                at_once=at_once, ask=ask),
                (lambda t: buttons([[(t.approve, f"ap:{approval.id}:y"), (t.reject, f"ap:{approval.id}:n")]]))
                if ask and approval is not None else None)
        words = dict(device=label, reference=payment.reference, amount=payment.amount, currency=payment.currency,
                     paid=paid, total=plan.total, excess=excess, at_once=at_once)
        told = {manager.telegram_id for manager in managers}
        if people.customer is not None and people.customer.chat_id is not None:
            told.add(people.customer.chat_id)
            await self._send(people.customer.chat_id, lambda t: t.plan_paid_off_people(for_customer=True, **words))
        for chat_id in (people.agent_chat, payment.chat_id):
            if chat_id is not None and chat_id not in told:
                told.add(chat_id)
                await self._send(chat_id, lambda t: t.plan_paid_off_people(for_customer=False, **words))

    async def _reversed(self, payment: Payment) -> None:
        """A payment taken back: every manager (but the one who reversed it, answered already), the customer's
        agent and whoever recorded it."""
        assert payment.id is not None
        async with self.db.read() as session:
            reversal = await ledger.reversal_of(session=session, payment_id=payment.id)
            managers = await ledger.managers(session=session)
            plan = await ledger.get_plan(session=session, plan_id=payment.plan_id) if payment.plan_id else None
            by = await ledger.get_person_by_id(session=session, person_id=reversal.by_id) \
                if reversal is not None and reversal.by_id is not None else None
        if reversal is None:
            return
        people = await self._people_of(payment.device_id) if payment.device_id is not None else _People(None, None, None)
        applied = payment.status is PaymentStatus.MATCHED
        words = dict(reference=payment.reference, amount=payment.amount, currency=payment.currency,
                     device=people.device.label if people.device else None, applied=applied,
                     cancelled_days=reversal.cancelled_days, owed=reversal.owed, reason=reversal.reason,
                     plan_paid=plan.paid if plan else None, plan_total=plan.total if plan else None, reopened=False)
        told = {by.telegram_id} if by is not None else set()
        for chat_id in [*(manager.telegram_id for manager in managers), people.agent_chat, payment.chat_id]:
            if chat_id is not None and chat_id not in told:
                told.add(chat_id)
                await self._send(chat_id, lambda t: t.reversed_text(**words))

    async def _people_of(self, device_id: int) -> _People:
        async with self.db.read() as session:
            device = await ledger.get_device(session=session, device_id=device_id)
            customer = agent = None
            if device is not None and device.customer_id is not None:
                customer = await ledger.get_customer(session=session, customer_id=device.customer_id)
            if customer is not None and customer.registered_by_id is not None:
                agent = await ledger.person_by_id(session=session, person_id=customer.registered_by_id)
        return _People(device, customer, agent.telegram_id if agent is not None and agent.active else None)

    async def _send(self, chat_id: int, words: Callable[[Texts], str],
                    markup: Callable[[Texts], InlineKeyboardMarkup | None] | None = None) -> None:
        await speak_to(self.bot, self.db, chat_id, words, sandbox=self.settings.uses_sandbox, markup=markup,
                       unreachable="payment notice")


@dataclass(frozen=True)
class _People:
    device: Device | None
    customer: Customer | None
    agent_chat: int | None


def buttons(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in row]
                                 for row in rows])


def assign_buttons(payment: Payment, candidates: list[Device], words: Texts) -> InlineKeyboardMarkup | None:
    """One button per device the money may be for (``pay:asg:<payment>:<device>``)."""
    rows = [[InlineKeyboardButton(words.assign_button(device.label), callback_data=f"pay:asg:{payment.id}:{device.id}")]
            for device in candidates]
    return InlineKeyboardMarkup(rows) if rows else None
