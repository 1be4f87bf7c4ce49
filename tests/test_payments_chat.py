"""Payments through the chat: cash with /pay, M-Pesa confirmations pasted or forwarded by agents
(shown back, recorded on confirmation, once), and text that is not a confirmation left alone."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.clock import ManualClock
from bot.standins.telegram import Sent, TelegramUser
from storage.models import PaymentStatus, Role
from tests.support.chat import AGENT, CUSTOMER, MANAGER, OTHER_AGENT, STRANGER
from tests.support.paying import DEVICE, Paying

SMS = ("QK71ABC123 Confirmed. Ksh250.00 received from JANE W 254712345678 on 22/11/26 at 10:15 AM "
       "New M-PESA balance is Ksh1,250.00. Transaction cost, Ksh0.00.")
SMS_WITH_ACCOUNT = ("QK71ABC124 Confirmed. Ksh1,250.00 sent to OMNIVOLTAIC LTD for account TEST2503000017 "
                    "on 22/11/26 at 3:40 PM New M-PESA balance is Ksh50.00. Transaction cost, Ksh23.00.")


pytestmark = pytest.mark.customer(price="50")  # the ``bot`` fixture (conftest.py): a customer for DEVICE at KES 50


def text_of(sent: Sent) -> str:
    return sent.rendered or ""


async def reply_containing(bot: Paying, user: TelegramUser, words: str, after: int) -> Sent:
    chat_id = user.id
    return await bot.chat.api.wait_for(lambda s: s.chat_id == chat_id and words in (s.rendered or ""), after=after)


# -- cash ----------------------------------------------------------------------------------------


async def test_cash_recorded_with_pay_goes_to_the_agent_and_the_customer(bot: Paying) -> None:
    after = bot.chat.api.position
    await bot.chat.api.user_says(AGENT, f"/pay {DEVICE} 275")
    answer = await reply_containing(bot, AGENT, "recorded", after)
    assert "KES 275.00 for TEST2503000017 = 5 days" in text_of(answer)
    assert "KES 25.00 is kept as credit" in text_of(answer)
    code_to_agent = await reply_containing(bot, AGENT, "Type the code", after)
    code_to_customer = await bot.chat.next(CUSTOMER)
    [code] = bot.chat.codes()
    assert code in text_of(code_to_agent) and code in text_of(code_to_customer)
    assert "Your payment of KES 275.00" in text_of(code_to_customer)
    [stored] = await bot.payments()
    agent = await bot.services.people.who(AGENT.id)
    assert stored.provider == "cash" and stored.reference.startswith("CASH-20261122-")
    assert (stored.recorded_by_id, stored.chat_id, stored.amount, stored.currency, stored.days) == (
        agent.person.id, AGENT.id, Decimal("275"), "KES", 5)
    [request] = await bot.requests()
    assert request.requested_by_id == agent.person.id and request.payment_reference == stored.reference


async def test_cash_with_a_reference_is_recorded_once(bot: Paying, clock: ManualClock) -> None:
    assert "not registered" in text_of(await bot.chat.say(OTHER_AGENT, f"/pay {DEVICE} 100 R-77"))
    after = bot.chat.api.position
    await bot.chat.make(OTHER_AGENT, Role.AGENT)
    await bot.chat.api.user_says(OTHER_AGENT, f"/pay {DEVICE} 100 R-77")
    await reply_containing(bot, OTHER_AGENT, "= 2 days", after)
    await reply_containing(bot, OTHER_AGENT, "Type the code", after)
    clock.advance(6)
    again = await bot.chat.say(OTHER_AGENT, f"/pay {DEVICE} 100 R-77")
    assert "already recorded" in text_of(again) and "Nothing changed" in text_of(again)
    assert len(await bot.payments()) == 1 and bot.chat.sandbox.generations == 1


async def test_pay_refuses_bad_input_and_records_nothing(bot: Paying) -> None:
    cases = {
        "/pay": "Usage: /pay",
        f"/pay {DEVICE}": "Usage: /pay",
        f"/pay {DEVICE} abc": "The amount must be a positive number",
        f"/pay {DEVICE} -5": "The amount must be a positive number",
        f"/pay {DEVICE} 0": "The amount must be a positive number",
        f"/pay {DEVICE} 1,250": "The amount must be a positive number",
        f"/pay {DEVICE} 100 bad<ref>": "A reference is",
        "/pay a/b 100": "A device id is",
        "/pay NOSUCH0001 100": "was not recorded",
        f"/pay {DEVICE} 1 2 3": "Usage: /pay",
    }
    for command, words in cases.items():
        answer = await bot.chat.say(AGENT, command)
        assert words in text_of(answer), (command, text_of(answer))
    assert "That command is for agents and managers" in text_of(await bot.chat.say(CUSTOMER, f"/pay {DEVICE} 100"))
    assert "not registered" in text_of(await bot.chat.say(STRANGER, f"/pay {DEVICE} 100"))
    assert await bot.payments() == [] and bot.chat.sandbox.generations == 0


# -- confirmations pasted or forwarded -------------------------------------------------------------


async def test_a_pasted_confirmation_is_shown_back_and_recorded_once_on_confirmation(bot: Paying) -> None:
    preview = await bot.chat.say(AGENT, SMS)
    shown = text_of(preview)
    for words in ("M-Pesa payment", "QK71ABC123", "KES 250.00", "JANE W, 254712345678", "22 Nov 2026 10:15",
                  "For: TEST2503000017 (Jane Wanjiru)"):
        assert words in shown, (words, shown)
    assert await bot.payments() == []
    after = bot.chat.api.position
    await bot.chat.api.user_taps(AGENT, preview, "Record this payment")
    answer = await reply_containing(bot, AGENT, "recorded", after)
    assert "QK71ABC123" in text_of(answer) and "= 5 days" in text_of(answer)
    await reply_containing(bot, AGENT, "Type the code", after)  # the agent who recorded it gets the code too
    code = await bot.chat.next(CUSTOMER)
    assert "KES 250.00" in text_of(code) and bot.chat.codes()[0] in text_of(code)
    [stored] = await bot.payments()
    agent = await bot.services.people.who(AGENT.id)
    assert (stored.provider, stored.reference, stored.account, stored.phone, stored.payer) == (
        "mpesa_pasted", "QK71ABC123", "254712345678", "254712345678", "JANE W")  # the agent's word, not Daraja's
    assert stored.recorded_by_id == agent.person.id and stored.status is PaymentStatus.MATCHED
    # the same message again, the old button again, and the same transaction from Daraja: no days again
    again = await bot.chat.say(AGENT, SMS)
    assert "already recorded" in text_of(again)
    await bot.chat.api.user_taps(AGENT, preview, "Record this payment")
    daraja = await bot.daraja({"TransID": "QK71ABC123", "TransAmount": "250.00", "BillRefNumber": DEVICE,
                               "MSISDN": "254712345678", "TransTime": "20261122101500"})
    assert daraja.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    await bot.issued(1)
    [pasted, copy] = await bot.payments()  # Daraja's confirmation is kept beside the pasted one, as its copy
    assert (copy.provider, copy.duplicate_of, copy.days) == ("mpesa", stored.id, 0) and pasted.confirmed_at is not None
    assert bot.chat.sandbox.generations == 1


async def test_a_forwarded_confirmation_with_an_account_is_recorded_for_that_device(bot: Paying) -> None:
    await bot.chat.api.user_forwards(AGENT, SMS_WITH_ACCOUNT, origin="Jane")
    preview = await bot.chat.api.wait_for(AGENT)
    assert "KES 1,250.00" in text_of(preview) and "Account: TEST2503000017" in text_of(preview)
    after = bot.chat.api.position
    await bot.chat.api.user_taps(AGENT, preview, "Record this payment")
    answer = await reply_containing(bot, AGENT, "recorded", after)
    assert "= 25 days" in text_of(answer)
    [stored] = await bot.payments()
    assert (stored.reference, stored.account, stored.phone) == ("QK71ABC124", DEVICE, None)


async def test_a_confirmation_can_be_dropped(bot: Paying) -> None:
    preview = await bot.chat.say(AGENT, SMS)
    dropped = await bot.chat.tap(AGENT, preview, "Cancel")
    assert "Not recorded" in text_of(dropped)
    assert await bot.payments() == []


async def test_ordinary_text_is_not_a_confirmation(bot: Paying) -> None:
    for text in ("hello", "QK71ABC123", "QK71ABC123 confirmed the meeting", "Confirmed. Ksh250 received from JANE",
                 "Please send Ksh250.00 to 0712345678", "PAY-1 Confirmed. Ksh 50 for the lunch"):
        answer = await bot.chat.say(AGENT, text)
        assert text_of(answer) == "I did not understand that. Send /help to see what you can do.", text
    assert await bot.payments() == []


async def test_customers_and_strangers_cannot_record_a_confirmation(bot: Paying) -> None:
    customer = await bot.chat.say(CUSTOMER, SMS)
    assert "your code will come here" in text_of(customer) and not customer.buttons
    assert "not registered" in text_of(await bot.chat.say(STRANGER, SMS))
    assert await bot.payments() == []


async def test_a_confirmation_with_neither_account_nor_phone_points_to_pay(bot: Paying) -> None:
    answer = await bot.chat.say(AGENT, "QK71ABC125 Confirmed. Ksh250.00 paid to SOLAR SHOP. on 22/11/26 at 10:15 AM.")
    assert "Account TEST2503000017" in text_of(answer)  # not /pay: cash cannot take an M-Pesa code
    assert await bot.payments() == []


async def test_a_pasted_confirmation_for_an_unknown_number_goes_to_the_managers(bot: Paying) -> None:
    preview = await bot.chat.say(MANAGER, SMS.replace("254712345678", "254700000999"))
    assert "matches no device I know yet" in text_of(preview)
    after = bot.chat.api.position
    await bot.chat.api.user_taps(MANAGER, preview, "Record this payment")
    answer = await reply_containing(bot, MANAGER, "kept for review", after)
    assert "QK71ABC123" in text_of(answer) and "254700000999" in text_of(answer)
    told = await reply_containing(bot, MANAGER, "The managers were told", after)
    assert "matches no device" in text_of(told)
    [stored] = await bot.payments()
    assert stored.status is PaymentStatus.UNMATCHED and stored.account == "254700000999"


async def test_help_lists_the_payment_commands_and_find(bot: Paying) -> None:
    agent = text_of(await bot.chat.say(AGENT, "/help"))
    assert "/pay" in agent and "/find 0017 — find a device by the last digits" in agent
    manager = text_of(await bot.chat.say(MANAGER, "/help"))
    assert "/pay" in manager and "/assign" in manager and "/find 0017" in manager
    customer = text_of(await bot.chat.say(CUSTOMER, "/help"))
    assert "/balance" in customer and "/find" not in customer and "/pay" not in customer
