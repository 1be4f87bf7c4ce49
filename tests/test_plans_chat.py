"""Payment plans to ownership, end to end through the chat and the payments webhook: a plan set by a
manager, payments counting toward it from every source (deposit first), paid off with one unlock code
(approved, or at once), reversals, repossession, /balance, /device, receipts, /export plans, and each bad
input refused with nothing changed."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import Sent, TelegramUser
from storage.models import (
    OPEN_STATUSES,
    Approval,
    ApprovalStatus,
    CodeKind,
    CodeRequest,
    Customer,
    Payment,
    Plan,
    PlanEvent,
    PlanStatus,
    Reversal,
    Role,
    Source,
    Status,
)
from tests.support.chat import AGENT, CUSTOMER, MANAGER, OTHER_AGENT, REPLIES
from tests.support.paying import DEVICE, Paying, paying

pytestmark = pytest.mark.customer(price="50")  # CUSTOMER registered by AGENT for DEVICE at KES 50 a day

OTHER_DEVICE = "01AH2307000009"


def text_of(sent: Sent) -> str:
    return sent.rendered or ""


async def said(bot: Paying, user: TelegramUser, words: str, after: int, timeout: float = 15) -> Sent:
    """The first message to ``user`` after ``after`` containing ``words``."""
    return await bot.chat.api.wait_for(lambda s: s.chat_id == user.id and words in (s.rendered or ""), after=after,
                                       timeout=timeout)


async def plan_rows(bot: Paying) -> list[Plan]:
    async with bot.services.db.read() as session:
        return list((await session.exec(select(Plan).order_by(Plan.id))).all())  # type: ignore[arg-type]


async def rows(bot: Paying, model: Any) -> list[Any]:
    async with bot.services.db.read() as session:
        return list((await session.exec(select(model).order_by(model.id))).all())


async def unlock_requests(bot: Paying) -> list[CodeRequest]:
    return [r for r in await bot.requests() if r.kind is CodeKind.FREE]


def hold_codes(bot: Paying) -> None:
    """Codes stay queued: neither a new request nor the scheduled tick pumps the engine."""
    engine = bot.services.engine

    async def no_pump() -> None:
        return None

    engine.kick = lambda: None
    engine.pump = no_pump


async def cash(bot: Paying, amount: str, reference: str) -> Sent:
    after = bot.chat.api.position
    await bot.chat.api.user_says(AGENT, f"/pay {DEVICE} {amount} {reference}")
    return await said(bot, AGENT, "recorded", after)


async def test_a_plan_is_set_shown_and_kept_with_its_history(bot: Paying) -> None:
    answer = await bot.chat.say(MANAGER, f"/plan {DEVICE} 500 50 KES 100")
    text = text_of(answer)
    assert "Plan set for TEST2503000017" in text and "Customer: Jane Wanjiru" in text
    assert "Total price KES 500.00, KES 50.00 a day, deposit KES 100.00" in text
    assert "Paid so far: KES 0.00 of KES 500.00 (0%)" in text and "Left to pay: KES 500.00" in text
    assert "Deposit: KES 100.00 still to pay" in text
    changed = text_of(await bot.chat.say(MANAGER, f"/plan {DEVICE} 600 60 KES"))
    assert "changed (paid so far stays)" in changed and "KES 600.00" in changed
    same = text_of(await bot.chat.say(MANAGER, f"/plan {DEVICE} 600 60 KES"))
    assert "already has these terms: nothing changed" in same
    shown = text_of(await bot.chat.say(MANAGER, f"/plan {DEVICE}"))
    assert "Payment plan of TEST2503000017" in shown and "History" in shown and "plan changed" in shown
    [plan] = await plan_rows(bot)
    assert (plan.total, plan.daily_price, plan.deposit, plan.status) == (Decimal(600), Decimal(60), Decimal(0),
                                                                         PlanStatus.ACTIVE)
    assert [event.kind for event in await rows(bot, PlanEvent)] == ["created", "changed"]
    device = await bot.device()
    assert device.daily_price == Decimal(60)  # the plan's price per day is the device's price
    assert "no payment plan" in text_of(await bot.chat.say(MANAGER, f"/plan {OTHER_DEVICE}"))


async def test_bad_plans_are_refused_and_change_nothing(bot: Paying) -> None:
    cases = {
        f"/plan {DEVICE} 500": "That is not a plan",
        f"/plan {DEVICE} 500 50": "That is not a plan",
        f"/plan {DEVICE} abc 50 KES": "That is not a plan",
        f"/plan {DEVICE} 500 50 KE": "That is not a plan",
        f"/plan {DEVICE} 500 -5 KES": "That is not a plan",
        f"/plan {DEVICE} 500 50 KES x": "That is not a plan",
        f"/plan {DEVICE} 500 600 KES": "cannot be more than the total",
        f"/plan {DEVICE} 500 50 KES 501": "deposit cannot be more than the total",
        "/plan a/b 500 50 KES": "A device id is",
        "/plan NOSUCH0001 500 50 KES": "does not know device",
    }
    for command, words in cases.items():
        assert words in text_of(await bot.chat.say(MANAGER, command)), command
    assert "Only managers" in text_of(await bot.chat.say(AGENT, f"/plan {DEVICE} 500 50 KES")) or \
        "managers" in text_of(await bot.chat.say(AGENT, f"/plan {DEVICE}"))
    assert await plan_rows(bot) == []


async def test_bare_plan_asks_step_by_step(bot: Paying) -> None:
    ask = await bot.chat.say(MANAGER, "/plan")
    assert "Which device" in text_of(ask)
    terms = await bot.chat.say(MANAGER, DEVICE)
    assert "type the total price" in text_of(terms)
    assert "not a plan" in text_of(await bot.chat.say(MANAGER, "lots"))
    confirm = await bot.chat.say(MANAGER, "300 30 KES 60")
    assert "total price KES 300.00, KES 30.00 a day, deposit KES 60.00?" in text_of(confirm)
    done = await bot.chat.tap(MANAGER, confirm, confirm.button("Yes, go ahead")["callback_data"])
    assert "Plan set for TEST2503000017" in text_of(done)
    [plan] = await plan_rows(bot)
    assert (plan.total, plan.deposit) == (Decimal(300), Decimal(60))


async def test_deposit_first_then_days_then_paid_off_with_one_approved_unlock_code(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 500 50 KES 100")
    # below the deposit: no days code, the receipt says why
    first = text_of(await cash(bot, "60", "R-1"))
    assert "Paid so far: KES 60.00 of KES 500.00; left to pay: KES 440.00." in first
    assert "deposit is not paid yet (KES 40.00 to go)" in first
    assert bot.chat.sandbox.generations == 0
    # the deposit paid: what is beyond it becomes days (140 - 40 = 100 = 2 days)
    after = bot.chat.api.position
    second = text_of(await cash(bot, "140", "R-2"))
    assert "= 2 days" in second and "Paid so far: KES 200.00 of KES 500.00" in second
    code = await said(bot, CUSTOMER, "Type the code", after)
    assert "Paid so far: KES 200.00 of KES 500.00; left to pay: KES 300.00." in text_of(code)
    await bot.issued(1)
    # /balance: paid of the total, left, the day it becomes hers
    balance = text_of(await bot.chat.say(CUSTOMER, "/balance"))
    assert "Paid so far: KES 200.00 of KES 500.00 (40%)" in balance and "Left to pay: KES 300.00" in balance
    assert "Yours on" in balance and "at KES 50.00 a day" in balance
    device = text_of(await bot.chat.say(AGENT, f"/device {DEVICE}"))
    assert "Plan: total price KES 500.00 (being paid)" in device and "Paid so far: KES 200.00" in device
    # the webhook's payment pays it off, with KES 20 beyond the total
    bot.chat.clock.advance(6)
    after = bot.chat.api.position
    response = await bot.pay({"reference": "WH-3", "amount": "320", "currency": "KES", "account": DEVICE})
    assert response.status_code == 200
    ask = await said(bot, MANAGER, "Plan paid off", after)
    assert "has paid KES 520.00 of KES 500.00" in text_of(ask) and "KES 20.00 beyond the total" in text_of(ask)
    assert [b["text"] for b in ask.buttons] == ["Approve", "Reject"]
    yours = await said(bot, CUSTOMER, "is yours", after)
    assert "once a manager has checked it" in text_of(yours)
    await said(bot, AGENT, "is the customer's", after)
    days_code = await said(bot, CUSTOMER, "Type the code", after)  # 300 within the total = 6 days
    assert "6 days" in text_of(days_code)
    await bot.issued(2)
    assert await unlock_requests(bot) == []  # nothing before a manager approves
    [plan] = await plan_rows(bot)
    assert (plan.status, plan.paid) == (PlanStatus.PAID_OFF, Decimal(520))
    [_, _, last] = await bot.payments()
    assert (last.excess, last.plan_paid, last.days) == (Decimal(20), Decimal(520), 6)
    # a paid-off device asks for no more days
    await bot.chat.api.user_says(AGENT, f"/days {DEVICE} 5")  # (the agent's code of WH-3 may still be on its way)
    await bot.chat.api.wait_for(lambda sent: sent.chat_id == AGENT.id and "is paid off" in text_of(sent), methods=REPLIES)
    # Approve: exactly one unlock code, to the customer and the agent
    bot.chat.clock.advance(6)
    after = bot.chat.api.position
    await bot.chat.api.user_taps(MANAGER, ask, ask.button("Approve")["callback_data"])
    unlock = await said(bot, CUSTOMER, "free code", after)
    [request] = await unlock_requests(bot)
    assert request.source is Source.PLAN and request.code and request.code in text_of(unlock)
    await said(bot, AGENT, request.code, after)
    await bot.settled(lambda: bot.device())
    assert (await bot.device()).unlocked
    again = await bot.chat.api.user_taps(MANAGER, ask, ask.button("Approve")["callback_data"])
    answered = await bot.settled(lambda: bot.chat.api.answered(again))
    assert "Already approved" in (answered.text or "")
    assert len(await unlock_requests(bot)) == 1
    balance = text_of(await bot.chat.say(CUSTOMER, "/balance"))
    assert "paid off: it is yours" in balance
    # money after the plan is paid off is kept for review
    after = bot.chat.api.position
    late = text_of(await cash(bot, "50", "R-4"))
    assert "cannot become days" in late
    await said(bot, MANAGER, "Payment kept for review", after)
    assert len(await unlock_requests(bot)) == 1


async def test_reversals_take_money_back_once(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 50 KES")
    await cash(bot, "100", "R-1")
    await bot.issued(1)
    # a code already issued cannot be taken back: the device owes it
    after = bot.chat.api.position
    answer = text_of(await bot.chat.say(MANAGER, "/reverse R-1 chargeback"))
    assert "Payment R-1 (KES 100.00, TEST2503000017) was reversed." in answer
    assert "KES 100.00 of it was already issued" in answer and "Reason: chargeback" in answer
    assert "Plan: paid so far KES 0.00 of KES 1,000.00" in answer
    await said(bot, AGENT, "was reversed", after)
    assert (await bot.device()).owed == Decimal(100)
    assert "was reversed already" in text_of(await bot.chat.say(MANAGER, "/reverse R-1"))
    after = bot.chat.api.position
    await bot.chat.api.user_says(MANAGER, "/summary")
    summary = text_of(await said(bot, MANAGER, "Summary for", after))
    await bot.chat.api.wait_for(lambda sent: sent.chat_id == MANAGER.id and sent.method == "sendPhoto", after=after)
    assert "Payments: KES 100.00 in 1 payment" in summary  # received that day, and taken back that day
    assert "Reversed by the providers: KES 100.00 in 1 payment" in summary
    assert "No payment has the reference NOPE" in text_of(await bot.chat.say(MANAGER, "/reverse NOPE"))
    assert len(await rows(bot, Reversal)) == 1
    # the next payment pays the debt first
    bot.chat.clock.advance(6)
    receipt = text_of(await cash(bot, "150", "R-2"))
    assert "KES 100.00 of it paid what was owed" in receipt and "= 1 day" in receipt
    assert (await bot.device()).owed == 0
    [plan] = await plan_rows(bot)
    assert plan.paid == Decimal(150)
    # a code not yet issued is cancelled (the device has had all its codes for today)
    await bot.issued(2)
    assert "Usage" in text_of(await bot.chat.say(MANAGER, "/reverse"))
    # (the agent's receipt of R-2 may still be on its way: the refusal is waited for by what it says)
    await bot.chat.api.user_says(AGENT, "/reverse R-2")
    await bot.chat.api.wait_for(lambda sent: sent.chat_id == AGENT.id and "managers" in text_of(sent), methods=REPLIES)


async def test_a_queued_code_is_cancelled_by_a_reversal_through_the_webhook(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 50 KES")
    hold_codes(bot)
    response = await bot.pay({"reference": "WH-1", "amount": "200", "currency": "KES", "account": DEVICE})
    assert response.status_code == 200
    await bot.settled(lambda: _matched(bot))
    reversal = {"reverses": "WH-1", "reference": "RV-1", "reason": "card chargeback"}
    assert (await bot.pay(reversal, secret="wrong")).status_code == 401
    assert (await bot.pay({"reverses": "WH-1"})).status_code == 400
    done = await bot.pay(reversal)
    assert done.status_code == 200 and done.json()["status"] == "reversed" and done.json()["cancelled_days"] == 4
    assert (await bot.pay(reversal)).json()["status"] == "duplicate"
    unknown = await bot.pay({"reverses": "NEVER", "reference": "RV-2"})
    assert unknown.status_code == 404
    [request] = await bot.requests()
    assert (request.status, request.reason) == (Status.REFUSED, "reversed")
    device = await bot.device()
    assert device.owed == 0 and device.credit_money == 0
    [plan] = await plan_rows(bot)
    assert plan.paid == 0
    [row] = await rows(bot, Reversal)
    assert (row.reference, row.cancelled_days, row.owed) == ("RV-1", 4, Decimal(0))


async def _matched(bot: Paying) -> bool:
    return any(p.device_id is not None and p.days for p in await bot.payments())


async def test_repossession_ends_the_plan_and_frees_the_device(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 50 KES")
    await cash(bot, "100", "R-1")
    await bot.issued(1)
    preview = await bot.chat.say(MANAGER, f"/repossess {DEVICE}")
    assert "Repossess TEST2503000017?" in text_of(preview) and "Jane Wanjiru" in text_of(preview)
    cancelled = await bot.chat.tap(MANAGER, preview, preview.button("Cancel")["callback_data"])
    assert "Cancelled" in text_of(cancelled) or "cancelled" in text_of(cancelled).lower()
    assert (await plan_rows(bot))[0].status is PlanStatus.ACTIVE
    preview = await bot.chat.say(MANAGER, f"/repossess {DEVICE}")
    done = await bot.chat.tap(MANAGER, preview, preview.button("Repossess")["callback_data"])
    assert "TEST2503000017 repossessed from Jane Wanjiru" in text_of(done)
    stale = await bot.chat.tap(MANAGER, preview, preview.button("Repossess")["callback_data"])
    assert "no longer" in text_of(stale).lower() or "button" in text_of(stale).lower()
    [plan] = await plan_rows(bot)
    assert plan.status is PlanStatus.REPOSSESSED and plan.paid == Decimal(100)
    assert (await bot.device()).customer_id is None
    assert "no plan to end" in text_of(await bot.chat.say(MANAGER, f"/repossess {DEVICE}"))
    # a new customer and a new plan; the old one and its payment stay
    await bot.chat.say(AGENT, f"/customer {DEVICE} 0722000111 John Otieno")
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 800 40 KES")
    plans = await plan_rows(bot)
    assert [p.status for p in plans] == [PlanStatus.REPOSSESSED, PlanStatus.ACTIVE] and plans[1].paid == 0
    assert len(await bot.payments()) == 1 and (await bot.payments())[0].plan_id == plans[0].id
    assert "Usage" in text_of(await bot.chat.say(MANAGER, "/repossess"))


async def test_export_plans_is_a_csv_of_every_plan(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 500 50 KES 100")
    await cash(bot, "150", "R-1")
    await bot.issued(1)
    after = bot.chat.api.position
    await bot.chat.api.user_says(MANAGER, "/export plans")
    sent = await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and s.document is not None, after=after)
    assert sent.filename and sent.filename.startswith("paygbot-plans-")
    [row] = list(csv.DictReader(io.StringIO(sent.document.decode())))  # type: ignore[union-attr]
    assert (row["device"], row["name"], row["phone"], row["total"], row["paid"], row["left"], row["status"]) == (
        DEVICE, "Jane Wanjiru", "+254712345678", "500", "150", "350", "active")
    assert row["agent"] == str(AGENT.id) and row["days_past_due"] == "0" and row["credit_until"]


@pytest.fixture
async def auto(erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock
               ) -> AsyncIterator[Paying]:
    async with paying(erm_sandbox, erm_url, database_url, clock, PAYGBOT_UNLOCK_WHEN_PAID="auto") as running:
        await running.customer()
        await running.price(DEVICE, "50")
        yield running


async def test_with_auto_unlock_the_code_goes_out_at_once(auto: Paying) -> None:
    bot = auto
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 300 50 KES")
    after = bot.chat.api.position
    receipt = text_of(await cash(bot, "300", "R-1"))
    assert "That pays it off" in receipt and "goes to them now" in receipt
    await said(bot, CUSTOMER, f"{DEVICE} — 6 days", after)  # the days the payment bought go first (the gap counts
    # from their code, which a busy machine may issue after the receipt)
    bot.chat.clock.advance(6)  # then the unlock code
    unlock = await said(bot, CUSTOMER, "free code", after)
    days, request = await bot.requests()
    assert (days.kind, days.days) == (CodeKind.DAYS, 6)
    assert request.kind is CodeKind.FREE and request.source is Source.PLAN and request.code in text_of(unlock)
    await said(bot, MANAGER, "goes out at once", after)
    assert await rows(bot, Approval) == []
    [plan] = await plan_rows(bot)
    assert plan.status is PlanStatus.PAID_OFF and plan.unlock_request_id == request.id


async def test_customers_and_devices_stay_as_they_were_on_refusal(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 500 50 KES")
    await cash(bot, "100", "R-1")
    refused = text_of(await bot.chat.say(MANAGER, f"/plan {DEVICE} 500 50 UGX"))
    assert "currency cannot change" in refused
    refused = text_of(await bot.chat.say(MANAGER, f"/price {DEVICE} 40 UGX"))
    assert "currency cannot change" in refused
    [plan] = await plan_rows(bot)
    assert (plan.currency, plan.daily_price) == ("KES", Decimal(50))
    assert (await bot.device()).currency == "KES"
    price = text_of(await bot.chat.say(MANAGER, f"/price {DEVICE} 40"))
    assert "40" in price
    [plan] = await plan_rows(bot)
    assert plan.daily_price == Decimal(40)
    assert [e.kind for e in await rows(bot, PlanEvent)] == ["created", "price"]
    customers = await rows(bot, Customer)
    payments = await rows(bot, Payment)
    assert len(customers) == 1 and len(payments) == 1


FORWARDED = ("QK71ABC124 Confirmed. Ksh100.00 sent to OMNIVOLTAIC LTD for account TEST2503000017 "
             "on 22/11/26 at 3:40 PM New M-PESA balance is Ksh50.00. Transaction cost, Ksh0.00.")


async def test_every_source_of_money_counts_toward_the_plan_once(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 5000 50 KES")
    # cash, twice under one reference
    await cash(bot, "100", "R-1")
    after = bot.chat.api.position  # the code of R-1 may still be on its way to the agent: wait for the refusal
    await bot.chat.api.user_says(AGENT, f"/pay {DEVICE} 100 R-1")
    await said(bot, AGENT, "already recorded", after)
    # the webhook, twice
    body = {"reference": "WH-1", "amount": "100", "currency": "KES", "account": DEVICE}
    assert (await bot.pay(body)).json()["status"] == "accepted"
    assert (await bot.pay(body)).json()["status"] == "duplicate"
    # Daraja (M-Pesa's own confirmation), twice
    daraja = {"TransID": "RKTQDM7W6S", "TransAmount": "100.00", "BillRefNumber": DEVICE, "MSISDN": "254712345678",
              "TransTime": "20261122101500"}
    assert (await bot.daraja(daraja)).status_code == 200 and (await bot.daraja(daraja)).status_code == 200
    # an M-Pesa message forwarded by the agent, recorded on confirmation
    after = bot.chat.api.position
    await bot.chat.api.user_forwards(AGENT, FORWARDED, origin="Jane")
    preview = await said(bot, AGENT, "QK71ABC124", after)
    after = bot.chat.api.position
    await bot.chat.api.user_taps(AGENT, preview, "Record this payment")
    await said(bot, AGENT, "recorded", after)
    # money for no known account, assigned by a manager
    assert (await bot.pay({"reference": "LOST-1", "amount": "100", "currency": "KES",
                           "account": "NOSUCH0001"})).status_code == 200
    await bot.settled(lambda: _kept(bot, "LOST-1"))
    after = bot.chat.api.position
    await bot.chat.api.user_says(MANAGER, f"/assign LOST-1 {DEVICE}")
    assigned = await said(bot, MANAGER, "recorded", after)
    assert "Paid so far: KES 500.00 of KES 5,000.00" in text_of(assigned)
    await bot.settled(lambda: _all_counted(bot, 5))
    [plan] = await plan_rows(bot)
    payments = [p for p in await bot.payments() if p.plan_id == plan.id]
    assert plan.paid == Decimal(500) == sum(p.amount for p in payments)
    assert sorted(p.provider for p in payments) == ["cash", "mpesa", "mpesa_pasted", "webhook", "webhook"]


async def _kept(bot: Paying, reference: str) -> bool:
    return any(p.reference == reference and p.reason == "unknown_account" for p in await bot.payments())


async def _all_counted(bot: Paying, count: int) -> bool:
    return len([p for p in await bot.payments() if p.plan_id is not None]) == count


async def test_reversing_the_deposit_takes_back_the_days_it_let_through(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 50 KES 100")
    await cash(bot, "100", "DEP")  # the deposit: no days
    await cash(bot, "100", "R-2")  # 2 days, issued
    await bot.issued(1)
    answer = text_of(await bot.chat.say(MANAGER, "/reverse DEP"))
    assert "KES 100.00 of it was already issued" in answer  # R-2 now only pays the deposit back
    assert (await bot.device()).owed == Decimal(100)
    bot.chat.clock.advance(6)
    receipt = text_of(await cash(bot, "100", "R-3"))  # pays the debt: no free days
    assert "KES 100.00 of it paid what was owed" in receipt
    assert (await bot.device()).owed == 0 and bot.chat.sandbox.generations == 1


async def test_a_reversal_after_repossession_leaves_the_next_customer_alone(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 50 KES")
    await cash(bot, "100", "OLD-1")
    await bot.issued(1)
    preview = await bot.chat.say(MANAGER, f"/repossess {DEVICE}")
    await bot.chat.tap(MANAGER, preview, preview.button("Repossess")["callback_data"])
    await bot.chat.say(AGENT, f"/customer {DEVICE} 0722000111 John Otieno")
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 800 40 KES")
    bot.chat.clock.advance(6)
    await cash(bot, "60", "NEW-1")  # 1 day and KES 20 of credit, John's
    await bot.issued(2)
    await bot.chat.say(MANAGER, "/reverse OLD-1")
    device = await bot.device()
    assert (device.credit_money, device.owed) == (Decimal(20), Decimal(0))
    old, new = await plan_rows(bot)
    assert (old.paid, new.paid) == (Decimal(0), Decimal(60))
    [reversal] = await rows(bot, Reversal)
    assert (reversal.plan_id, reversal.owed) == (old.id, Decimal(100))


async def test_a_plan_reopened_by_a_reversal_is_paid_off_again_with_one_unlock_code(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 100 50 KES")
    await cash(bot, "60", "R-1")
    after = bot.chat.api.position
    await cash(bot, "60", "R-2")  # paid off, KES 20 beyond the total
    first_ask = await said(bot, MANAGER, "Plan paid off", after)
    answer = text_of(await bot.chat.say(MANAGER, "/reverse R-1"))
    assert "no longer paid off" in answer
    [approval] = await rows(bot, Approval)
    assert approval.status is ApprovalStatus.CANCELLED
    query = await bot.chat.api.user_taps(MANAGER, first_ask, first_ask.button("Approve")["callback_data"])
    await bot.settled(lambda: bot.chat.api.answered(query))
    await said(bot, MANAGER, "no longer paid off", after)
    assert await unlock_requests(bot) == []
    [plan] = await plan_rows(bot)
    assert (plan.status, plan.paid) == (PlanStatus.ACTIVE, Decimal(60))
    bot.chat.clock.advance(6)
    after = bot.chat.api.position
    await cash(bot, "60", "R-3")
    ask = await said(bot, MANAGER, "Plan paid off", after)
    # R-2's day (let out by the first move) is answered before the clock moves again: the unlock code's gap counts
    # from that answer, and one a busy machine gives after the move would leave it waiting on a clock that stays
    await bot.settled(lambda: _codes_out(bot))
    bot.chat.clock.advance(6)
    await bot.chat.api.user_taps(MANAGER, ask, ask.button("Approve")["callback_data"])
    await bot.settled(lambda: _unlocked(bot))
    [plan] = await plan_rows(bot)
    device = await bot.device()
    assert (plan.status, plan.paid) == (PlanStatus.PAID_OFF, Decimal(120)) and device.owed == 0
    assert len(await unlock_requests(bot)) == 1


async def _unlocked(bot: Paying) -> bool:
    return any(r.code for r in await unlock_requests(bot))


async def _codes_out(bot: Paying) -> bool:
    """No request is waiting for its turn or for the ERM's answer."""
    return all(r.status not in OPEN_STATUSES for r in await bot.requests())


async def test_a_rejected_unlock_says_how_to_issue_it_later(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 100 50 KES")
    after = bot.chat.api.position
    await cash(bot, "100", "R-1")
    ask = await said(bot, MANAGER, "Plan paid off", after)
    after = bot.chat.api.position
    await bot.chat.api.user_taps(MANAGER, ask, ask.button("Reject")["callback_data"])
    hint = await said(bot, MANAGER, "stays paid off without its unlock code", after)
    assert f"/free {DEVICE}" in text_of(hint)
    assert await unlock_requests(bot) == []


async def test_a_cancelled_queued_code_gives_back_the_credit_it_used(bot: Paying) -> None:
    hold_codes(bot)
    await cash(bot, "40", "R-1")  # less than a day: KES 40 of credit
    await cash(bot, "60", "R-2")  # with the credit: 2 days, queued
    assert (await bot.device()).credit_money == 0
    await bot.chat.say(MANAGER, "/reverse R-2")
    device = await bot.device()
    assert (device.credit_money, device.owed, device.prepaid_days) == (Decimal(40), Decimal(0), 0)


async def test_a_total_lowered_to_what_is_paid_pays_the_plan_off(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 50 KES")
    await cash(bot, "300", "R-1")
    await bot.issued(1)
    after = bot.chat.api.position
    answer = text_of(await bot.chat.say(MANAGER, f"/plan {DEVICE} 300 50 KES"))
    assert "With the new total it is paid off" in answer
    ask = await said(bot, MANAGER, "its total is now KES 300.00", after)
    told = await said(bot, CUSTOMER, "That pays it off", after)
    assert "is yours" in text_of(told)
    await said(bot, AGENT, "That pays it off", after)
    bot.chat.clock.advance(6)
    await bot.chat.api.user_taps(MANAGER, ask, ask.button("Approve")["callback_data"])
    await bot.settled(lambda: _unlocked(bot))
    assert len(await unlock_requests(bot)) == 1


async def test_a_reversal_after_the_deposit_changed_takes_back_only_its_own_days(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 10 KES")
    await cash(bot, "500", "R-1")  # 50 days
    await bot.issued(1)
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 10 KES 400")  # a deposit, set after the fact
    bot.chat.clock.advance(6)
    await cash(bot, "100", "R-2")  # 10 days
    await bot.issued(2)
    await bot.chat.say(MANAGER, "/reverse R-2")
    [reversal] = await rows(bot, Reversal)
    assert (reversal.taken, reversal.owed) == (Decimal(100), Decimal(100))  # its 10 days, not the deposit's 400
    assert (await bot.device()).owed == Decimal(100)


async def test_an_unlock_code_the_erm_refused_is_asked_again(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 100 50 KES")
    after = bot.chat.api.position
    await cash(bot, "100", "R-1")
    ask = await said(bot, MANAGER, "Plan paid off", after)
    await bot.issued(1)
    bot.chat.sandbox.fail_next(1, status=403, body={"message": "Product is suspended"},
                               paths=["/code/code/freecodeotp", "/graphql"])
    bot.chat.clock.advance(6)
    await bot.chat.api.user_taps(MANAGER, ask, ask.button("Approve")["callback_data"])
    refused = await bot.settled(lambda: _unlock_with(bot, Status.REFUSED))
    assert refused.kind is CodeKind.FREE
    bot.chat.clock.advance(6)
    again = await bot.chat.api.user_taps(MANAGER, ask, ask.button("Approve")["callback_data"])
    await bot.settled(lambda: bot.chat.api.answered(again))
    await bot.settled(lambda: _unlocked(bot))
    [plan] = await plan_rows(bot)
    issued = [r for r in await unlock_requests(bot) if r.code]
    assert len(issued) == 1 and plan.unlock_request_id == issued[0].id and (await bot.device()).unlocked


async def _unlock_with(bot: Paying, status: Status) -> CodeRequest | None:
    return next((r for r in await unlock_requests(bot) if r.status is status), None)


async def test_portfolio_shows_where_the_plans_stand(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 50 KES")
    await cash(bot, "200", "R-1")  # 4 days
    await bot.issued(1)
    after = bot.chat.api.position
    text = text_of(await bot.chat.say(MANAGER, "/portfolio"))
    picture = await bot.chat.api.wait_for(lambda sent: sent.chat_id == MANAGER.id and sent.method == "sendPhoto",
                                          after=after)
    assert picture.photo and picture.photo.startswith(b"\x89PNG")
    assert "Plans: 1 being paid, 0 paid off, 0 repossessed" in text and "Left to pay: KES 800.00" in text
    assert "PAR30: 0%" in text and "Collection rate: " in text
    assert "1–7 days: 0 plans, KES 0.00" in text and "over 90 days: 0 plans" in text
    assert "Alex Kamau: 1 plan, KES 800.00 left, PAR30 0%" in text
    bot.chat.clock.advance(days=40)  # the credit ended 36 days ago: at risk
    after = bot.chat.api.position
    text = text_of(await bot.chat.say(MANAGER, "/portfolio"))
    await bot.chat.api.wait_for(lambda sent: sent.chat_id == MANAGER.id and sent.method == "sendPhoto", after=after)
    assert "PAR30: 100%" in text and "31–90 days: 1 plan, KES 800.00" in text
    after = bot.chat.api.position
    await bot.chat.api.user_says(MANAGER, "/summary")
    summary = text_of(await said(bot, MANAGER, "Summary for", after))
    await bot.chat.api.wait_for(lambda sent: sent.chat_id == MANAGER.id and sent.method == "sendPhoto", after=after)
    assert "📈 PAR30 100% (no change since the day before); collection rate over 7 days 0% (no change)" in summary
    assert "managers" in text_of(await bot.chat.say(AGENT, "/portfolio"))
    after = bot.chat.api.position
    await bot.chat.api.user_says(MANAGER, "/export portfolio")
    sent = await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and s.document is not None, after=after)
    [row] = list(csv.DictReader(io.StringIO(sent.document.decode())))  # type: ignore[union-attr]
    assert (row["device"], row["left"], row["days_past_due"], row["at_risk"], row["agent"]) == (
        DEVICE, "800", "36", "yes", "Alex Kamau")


async def test_visits_list_the_customers_past_due_most_days_first(bot: Paying) -> None:
    await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 50 KES")
    await cash(bot, "100", "R-1")  # 2 days
    await bot.issued(1)
    assert "Nobody to visit" in await visits(bot, AGENT)
    bot.chat.clock.advance(days=14)  # credit ended 12 days ago
    text = await visits(bot, AGENT)
    assert "Jane Wanjiru, +254712345678 — TEST2503000017: 12 days past due" in text
    assert "KES 900.00 left to pay" in text and "KES 350.00 buys 7 days" in text
    everyone = await visits(bot, MANAGER)
    assert "Alex Kamau" in everyone and "12 days past due" in everyone
    await bot.chat.make(OTHER_AGENT, Role.AGENT)
    assert "Nobody to visit" in await visits(bot, OTHER_AGENT)  # not their customer
    moved = text_of(await bot.chat.say(MANAGER, f"/move {DEVICE} {OTHER_AGENT.id}"))
    assert "Jane Wanjiru (TEST2503000017) is looked after by" in moved
    assert "12 days past due" in await visits(bot, OTHER_AGENT)
    assert "Nobody to visit" in await visits(bot, AGENT)
    assert "not an agent or manager" in text_of(await bot.chat.say(MANAGER, f"/move {DEVICE} 99999"))
    assert "Usage: /move" in text_of(await bot.chat.say(MANAGER, f"/move {DEVICE}"))
    assert "managers" in text_of(await bot.chat.say(AGENT, f"/move {DEVICE} {AGENT.id}"))



async def visits(bot: Paying, user: TelegramUser) -> str:
    """``/visits`` from ``user``: the visit list itself (not a code message that arrives meanwhile)."""
    after = bot.chat.api.position
    await bot.chat.api.user_says(user, "/visits")
    return text_of(await bot.chat.api.wait_for(
        lambda sent: sent.chat_id == user.id and ("Visits" in (sent.rendered or "") or "Nobody to visit" in
                                                  (sent.rendered or "")), after=after))
