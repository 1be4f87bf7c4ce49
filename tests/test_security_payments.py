"""Holes in the money path, found by attacking the running bot, each driven the way the attacker did:
through the chat (the Bot API stand-in) or through the payment webhooks over real HTTP.

- Real money swallowed: a reference taken first (cash, a pasted message, another provider) made a
  later payment with the same reference a "duplicate" that was answered 2xx and dropped.
- A pasted M-Pesa message was recorded as Safaricom's own confirmation (``mpesa``).
- A device priced without a currency took money in any currency at face value.
- Amounts such as ``1e3``, ``1_000`` or ``٥٠`` were read as money; days and ids in other digits broke
  the handlers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.clock import ManualClock
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import Sent, TelegramUser
from storage.models import PaymentNotice, PaymentStatus
from tests.support.chat import AGENT, CUSTOMER, MANAGER, REPLIES
from tests.support.paying import DEVICE, Paying, paying

CODE = "QKSQT12345"
"""An M-Pesa transaction code (10 letters and digits)."""


def sms(reference: str = CODE, amount: str = "50.00") -> str:
    """An M-Pesa confirmation as the payer receives it, for the device's account."""
    return (f"{reference} Confirmed. Ksh{amount} sent to OMNIVOLTAIC LTD for account {DEVICE} on 22/11/26 at "
            "10:15 AM New M-PESA balance is Ksh50.00. Transaction cost, Ksh23.00.")


def daraja(reference: str = CODE, amount: object = "5000.00", account: str = DEVICE) -> dict[str, object]:
    return {
        "TransactionType": "Pay Bill", "TransID": reference, "TransTime": "20261122101500", "TransAmount": amount,
        "BusinessShortCode": "600638", "BillRefNumber": account, "InvoiceNumber": "", "OrgAccountBalance": "1.00",
        "ThirdPartyTransID": "", "MSISDN": "254712345678", "FirstName": "JANE", "MiddleName": "",
        "LastName": "WANJIRU",
    }


def webhook(reference: str, amount: object, currency: str = "KES", account: str = DEVICE) -> dict[str, object]:
    return {"reference": reference, "amount": amount, "currency": currency, "account": account}


pytestmark = pytest.mark.customer(price="50")  # the ``bot`` fixture (conftest.py): a customer for DEVICE at KES 50


@pytest.fixture
async def unpriced(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                   clock: ManualClock) -> AsyncIterator[Paying]:
    async with paying(erm_sandbox, erm_url, database_url, clock) as running:
        await running.customer()
        yield running


def text_of(sent: Sent) -> str:
    return sent.rendered or ""


def sent_to(bot: Paying, user: TelegramUser) -> list[Sent]:
    return [sent for sent in bot.chat.api.sent if sent.chat_id == user.id]


async def tap_for_answer(bot: Paying, user: TelegramUser, message: Sent, button: str) -> Sent:
    """``user`` taps ``button``: the answer, not the code that may reach them first (both follow one commit)."""
    after = bot.chat.api.position
    await bot.chat.api.user_taps(user, message, button)
    return await bot.chat.api.wait_for(
        lambda s: s.chat_id == user.id and s.method in REPLIES and "Type the code" not in text_of(s), after=after)


async def record_pasted(bot: Paying, text: str) -> Sent:
    """AGENT pastes a confirmation and taps "Record this payment": the answer (and its code, if one goes out,
    has reached the agent, so that the next reply awaited is the next one)."""
    preview = await bot.chat.say(AGENT, text)
    assert "Record this payment" in str(preview.buttons), text_of(preview)
    after = bot.chat.api.position
    answer = await tap_for_answer(bot, AGENT, preview, "Record this payment")
    if "= " in text_of(answer):
        await bot.chat.api.wait_for(lambda s: s.chat_id == AGENT.id and "Type the code" in text_of(s), after=after)
    return answer


# -- 1. real money is never swallowed by a reference taken first -----------------------------------


async def test_cash_cannot_take_an_mpesa_transaction_code_as_its_reference(bot: Paying) -> None:
    for reference in (CODE, CODE.lower(), "RKTQDM7W6S"):
        answer = await bot.chat.say(AGENT, f"/pay {DEVICE} 50 {reference}")
        assert "looks like an M-Pesa transaction code" in text_of(answer), text_of(answer)
        assert "paste or forward its M-Pesa confirmation" in text_of(answer)
    assert await bot.payments() == [] and bot.chat.sandbox.generations == 0
    # so the real payment with that code still becomes its days
    assert (await bot.daraja(daraja())).json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    code = await bot.chat.next(CUSTOMER)
    assert "KES 5,000.00" in text_of(code) and "100 days" in text_of(code)


async def test_real_mpesa_money_under_a_pasted_reference_is_kept_for_the_managers(
    bot: Paying, clock: ManualClock
) -> None:
    """An agent pastes a made-up message for KES 50 with the code the customer's real KES 5,000 will have."""
    answer = await record_pasted(bot, sms(amount="50.00"))
    assert "= 1 day" in text_of(answer)
    await bot.issued(1)
    await bot.chat.next(CUSTOMER)
    real = await bot.daraja(daraja(amount="5000.00"))
    assert real.status_code == 200 and real.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    notice = await bot.chat.next(MANAGER)
    text = text_of(notice)
    for words in (CODE, "KES 5,000.00", "(M-Pesa)", "another payment was already recorded under this reference",
                  "Recorded first under this reference: KES 50.00 for <code>TEST2503000017</code> (M-Pesa message "
                  "pasted by an agent)"):
        assert words in (notice.text or "") or words in text, (words, notice.text)
    [pasted, conflict] = await bot.payments()
    assert (pasted.provider, pasted.days, pasted.confirmed_at) == ("mpesa_pasted", 1, None)
    assert (conflict.provider, conflict.amount, conflict.status, conflict.reason, conflict.duplicate_of) == (
        "mpesa", Decimal("5000.00"), PaymentStatus.UNMATCHED, "reference_conflict", pasted.id)
    assert conflict.notice is PaymentNotice.MANAGERS and conflict.days == 0
    # Daraja retries: the exact repeat changes nothing, and the managers are not told twice
    told = len(sent_to(bot, MANAGER))
    assert (await bot.daraja(daraja(amount="5000.00"))).json()["ResultCode"] == 0
    await asyncio.sleep(0.3)
    assert len(await bot.payments()) == 2 and len(sent_to(bot, MANAGER)) == told
    assert bot.chat.sandbox.generations == 1
    # a manager checks and assigns it: the customer gets the 100 days paid for
    clock.advance(6)
    assigned = await tap_for_answer(bot, MANAGER, notice, f"Assign to {DEVICE}")
    assert "= 100 days" in text_of(assigned), text_of(assigned)
    await bot.issued(2)
    assert [record.code_days for record in bot.chat.sandbox.device(DEVICE).codes] == [1, 100]


async def test_cash_then_a_webhook_with_its_reference_and_another_amount_reaches_the_managers(
    bot: Paying, clock: ManualClock
) -> None:
    after = bot.chat.api.position
    await bot.chat.api.user_says(AGENT, f"/pay {DEVICE} 50 R-12345")
    # the answer, whichever comes first of it and the code (an ERM at zero latency may beat it)
    await bot.chat.api.wait_for(lambda s: s.chat_id == AGENT.id and "= 1 day" in text_of(s), after=after)
    await bot.issued(1)
    answer = await bot.pay(webhook("R-12345", "5000"))
    assert answer.status_code == 200 and answer.json() == {"status": "accepted", "reference": "R-12345"}
    notice = await bot.chat.next(MANAGER)
    assert "R-12345" in text_of(notice) and "KES 5,000.00" in text_of(notice) and "payment webhook" in text_of(notice)
    assert "another payment was already recorded" in text_of(notice)
    again = await bot.pay(webhook("R-12345", "5000"))  # the provider retries: a duplicate, nothing changes
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    [cash, conflict] = await bot.payments()
    assert (cash.provider, conflict.provider, conflict.duplicate_of) == ("cash", "webhook", cash.id)
    assert conflict.status is PaymentStatus.UNMATCHED and bot.chat.sandbox.generations == 1
    # the same amount for another account is not that payment either
    other = await bot.pay(webhook("R-12345", "5000", account="SBX00000000007"))
    assert other.status_code == 200 and other.json()["status"] == "accepted"
    assert "SBX00000000007" in text_of(await bot.chat.next(MANAGER))
    [*_, third] = await bot.payments()
    assert (third.account, third.duplicate_of, third.status) == ("SBX00000000007", cash.id, PaymentStatus.UNMATCHED)
    # /assign by the reference takes the payment kept for review, not the cash already applied
    clock.advance(6)
    after = bot.chat.api.position
    await bot.chat.api.user_says(MANAGER, f"/assign R-12345 {DEVICE}")
    done = await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and "recorded" in text_of(s), after=after)
    assert "= 100 days" in text_of(done)
    await bot.issued(2)


# -- 2. a pasted message is the agent's word until M-Pesa's own confirmation agrees -----------------


async def test_a_pasted_payment_is_the_agents_word_until_daraja_confirms_it(bot: Paying) -> None:
    answer = await record_pasted(bot, sms(amount="250.00"))
    assert "= 5 days" in text_of(answer)
    await bot.issued(1)
    [pasted] = await bot.payments()
    assert pasted.provider == "mpesa_pasted" and pasted.confirmed_at is None
    again = await bot.chat.say(AGENT, sms(amount="250.00"))
    assert "already recorded" in text_of(again) and "M-Pesa has not confirmed it yet" in text_of(again)
    after = bot.chat.api.position
    summary = await bot.chat.say(MANAGER, "/summary")
    await bot.chat.api.wait_for(MANAGER.id, after=after + 1, methods=("sendPhoto",))
    assert "1 pasted M-Pesa message not confirmed by M-Pesa (yet)" in text_of(summary), text_of(summary)
    assert CODE in text_of(summary)
    # M-Pesa's own confirmation of the same money: kept as its copy, no days again
    assert (await bot.daraja(daraja(amount="250.00"))).json()["ResultCode"] == 0
    [pasted, copy] = await bot.payments()
    assert pasted.confirmed_at is not None
    assert (copy.provider, copy.duplicate_of, copy.status, copy.days) == ("mpesa", pasted.id, PaymentStatus.MATCHED, 0)
    retried = await bot.daraja(daraja(amount="250.00"))  # Daraja retries: nothing more
    assert retried.json()["ResultCode"] == 0 and len(await bot.payments()) == 2
    confirmed = await bot.chat.say(AGENT, sms(amount="250.00"))
    assert "already recorded" in text_of(confirmed) and "M-Pesa confirmed it on 22 Nov 2026" in text_of(confirmed)
    after = bot.chat.api.position
    summary = await bot.chat.say(MANAGER, "/summary")
    await bot.chat.api.wait_for(MANAGER.id, after=after + 1, methods=("sendPhoto",))
    assert "not confirmed by M-Pesa" not in text_of(summary)
    assert "Payments: KES 250.00 in 1 payment" in text_of(summary)  # the copy is not money of its own
    await asyncio.sleep(0.3)
    assert bot.chat.sandbox.generations == 1


async def test_a_pasted_message_for_another_device_does_not_absorb_real_mpesa_money(bot: Paying) -> None:
    """A pasted message (true or forged) names another device: Safaricom's payment with the same code and
    amount for this device is not its copy, but a conflict the managers see; nothing is confirmed."""
    other = "SBX00000000007"
    preview = await bot.chat.say(AGENT, sms(amount="250.00").replace(DEVICE, other))
    await bot.chat.tap(AGENT, preview, "Record this payment")
    assert (await bot.daraja(daraja(amount="250.00"))).json()["ResultCode"] == 0

    async def kept() -> list[object] | None:
        payments = await bot.payments()
        real = [p for p in payments if p.provider == "mpesa" and p.status is PaymentStatus.UNMATCHED]
        return payments if real and real[0].notice is PaymentNotice.MANAGERS else None

    payments = await bot.settled(kept)
    [pasted] = [p for p in payments if p.provider == "mpesa_pasted"]
    [real] = [p for p in payments if p.provider == "mpesa"]
    assert pasted.confirmed_at is None and pasted.account == other
    assert real.reason == "reference_conflict" and real.duplicate_of == pasted.id and real.days == 0


async def test_a_message_pasted_after_daraja_is_that_payment_or_a_conflict(bot: Paying) -> None:
    after = bot.chat.api.position
    assert (await bot.daraja(daraja(amount="250.00"))).json()["ResultCode"] == 0
    await bot.chat.next(CUSTOMER)
    await bot.chat.api.wait_for(lambda s: s.chat_id == AGENT.id and "Type the code" in text_of(s), after=after)
    same = await bot.chat.say(AGENT, sms(amount="250.00"))
    assert "already recorded" in text_of(same) and "It came from M-Pesa itself" in text_of(same)
    assert not same.buttons and len(await bot.payments()) == 1
    # the same code with another amount is not that payment: recorded, but only for the managers to judge
    answer = await record_pasted(bot, sms(amount="2,500.00"))
    assert "another payment was already recorded under this reference" in text_of(answer), text_of(answer)
    assert "The managers were told" in text_of(answer)
    [daraja_row, conflict] = await bot.payments()
    assert (conflict.provider, conflict.amount, conflict.duplicate_of, conflict.status) == (
        "mpesa_pasted", Decimal("2500.00"), daraja_row.id, PaymentStatus.UNMATCHED)
    assert CODE in text_of(await bot.chat.next(MANAGER))
    await asyncio.sleep(0.3)
    assert bot.chat.sandbox.generations == 1


async def test_a_look_alike_letter_does_not_make_a_second_payment_of_a_pasted_code(bot: Paying) -> None:
    assert "= 5 days" in text_of(await record_pasted(bot, sms(amount="250.00")))
    kelvin = sms(CODE.replace("K", "\u212a"), "250.00")  # KELVIN SIGN: looks like K, is another string
    answer = await bot.chat.say(AGENT, kelvin)
    assert text_of(answer) == "I did not understand that. Send /help to see what you can do."
    assert len(await bot.payments()) == 1


# -- 3. a price always has a currency ---------------------------------------------------------------


async def test_a_price_without_a_currency_does_not_take_other_money_at_face_value(unpriced: Paying) -> None:
    bot = unpriced
    answer = await bot.chat.say(MANAGER, f"/price {DEVICE} 50")
    assert "KES 50.00" in text_of(answer), text_of(answer)
    assert (await bot.device()).currency == "KES"  # PAYGBOT_CURRENCY
    response = await bot.pay(webhook("TZS-1", "5000", "TZS"))
    assert response.status_code == 200
    notice = await bot.chat.next(MANAGER)
    assert "TZS-1" in text_of(notice) and "another currency" in text_of(notice)
    [stored] = await bot.payments()
    assert (stored.status, stored.reason, stored.days) == (PaymentStatus.UNMATCHED, "currency", 0)
    assert bot.chat.sandbox.generations == 0
    # a price typed without a currency keeps the device's own
    await bot.chat.say(MANAGER, f"/price {DEVICE} 1000 TZS")
    assert "TZS 100.00" in text_of(await bot.chat.say(MANAGER, f"/price {DEVICE} 100"))
    assert (await bot.device()).currency == "TZS"


async def test_a_price_left_without_a_currency_holds_money_in_any_currency(unpriced: Paying) -> None:
    bot = unpriced
    await bot.price(DEVICE, "50", None)  # as a price set before prices had to have a currency
    assert (await bot.pay(webhook("TZS-2", "5000", "TZS"))).status_code == 200
    assert "another currency" in text_of(await bot.chat.next(MANAGER))
    [stored] = await bot.payments()
    assert stored.status is PaymentStatus.UNMATCHED and stored.reason == "currency"
    assert bot.chat.sandbox.generations == 0


# -- 4. amounts are plain decimals; days and ids are ASCII digits ----------------------------------


@pytest.mark.parametrize("amount", [
    b"1e3", b"1E3", b"2.5e2", b'"1e3"', b'"1_000"', b'"1E+3"', b'"+250"', b'"250."', b'".5"',
    '"\u0662\u0665\u0660"'.encode(), '"\uff12\uff15\uff10"'.encode(),
])
async def test_the_webhook_takes_only_plain_decimal_amounts(bot: Paying, amount: bytes) -> None:
    body = b'{"reference": "AMT-1", "amount": ' + amount + b', "currency": "KES", "account": "' + DEVICE.encode() + b'"}'
    response = await bot.pay(body)
    assert response.status_code == 400, (amount, response.text)
    assert "amount" in response.json()["error"]
    assert await bot.payments() == []


async def test_daraja_takes_only_plain_decimal_amounts(bot: Paying) -> None:
    for amount in ("1e3", "1_000", "1E3", "\u0661\u0660\u0660"):
        response = await bot.daraja(daraja("RKTQDM7W6S", amount))
        assert response.status_code == 400 and response.json()["ResultCode"] != 0, amount
    raw = json.dumps(daraja("RKTQDM7W6S", "X")).replace('"X"', "1e3").encode()
    assert (await bot.daraja(raw)).status_code == 400
    assert await bot.payments() == []
    # plain decimals still pass, as text and as JSON numbers
    assert (await bot.pay(webhook("AMT-2", 250.5))).json()["status"] == "accepted"
    assert (await bot.daraja(daraja("RKTQDM7W6S", 100))).json()["ResultCode"] == 0
    assert len(await bot.payments()) == 2


async def test_amounts_typed_in_the_chat_are_plain_decimals(bot: Paying) -> None:
    for amount in ("\u0665\u0660", "\uff15\uff10", "1e3", "1_000", "\u0665\u0660.5"):
        answer = await bot.chat.say(AGENT, f"/pay {DEVICE} {amount}")
        assert "The amount must be a positive number" in text_of(answer), (amount, text_of(answer))
        price = await bot.chat.say(MANAGER, f"/price {DEVICE} {amount} KES")
        assert "The price must be a positive amount" in text_of(price), (amount, text_of(price))
    pasted = await bot.chat.say(AGENT, sms(amount="\u0662\u0665\u0660.00"))
    assert text_of(pasted) == "I did not understand that. Send /help to see what you can do."
    assert await bot.payments() == [] and bot.chat.sandbox.generations == 0
    assert (await bot.device()).daily_price == Decimal("50")


async def test_days_and_ids_in_other_digits_get_an_answer_and_change_nothing(bot: Paying) -> None:
    for days in ("\u00b2", "\u0663\u0660", "\uff13\uff10", "\u00b9\u2070"):
        answer = await bot.chat.say(AGENT, f"/days {DEVICE} {days}")
        assert "Days must be a whole number from 1 to 1095" in text_of(answer), (days, text_of(answer))
    await bot.chat.say(AGENT, "/days")
    await bot.chat.say(AGENT, DEVICE)
    answer = await bot.chat.say(AGENT, "\u00b2")  # typed in the dialogue
    assert "Days must be a whole number" in text_of(answer), text_of(answer)
    await bot.chat.say(AGENT, "/cancel")
    for telegram_id in ("\u00b2", "\u0661\u0662\u0663"):
        answer = await bot.chat.say(MANAGER, f"/revoke {telegram_id}")
        assert "Usage: /revoke" in text_of(answer), (telegram_id, text_of(answer))
    assert not any("went wrong" in text_of(sent) for sent in bot.chat.api.sent)
    assert bot.chat.sandbox.generations == 0
