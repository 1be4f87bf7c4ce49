"""Two holes found by attacking the running bot, driven through the chat as the attacker would.

1. Phones were matched on their last 9 digits: a stranger with +255 700 000 001 sharing their own
   contact became the customer +254 700 000 001 (the customer's chat silently unlinked), /customer
   with that number overwrote the other customer, and money from it was credited to them.
2. A message Telegram refused with 400 (HTML it cannot parse) counted as delivered: the code never
   reached the customer and nobody knew.

No path of the bot puts unescaped text into HTML today (every value goes through ``esc``), so the
refused HTML is made by replacing a sentence of ``bot.texts.Texts`` with a broken one, as a broken
translation or a future unescaped value would be; the Bot API stand-in refuses it exactly as
Telegram does (400 "can't parse entities").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from bot.people import Kind
from bot.phones import e164
from bot.standins.telegram import Sent
from bot.texts import Texts
from storage.models import CodeRequest, Customer, PaymentStatus, Status
from tests.support.chat import AGENT, CUSTOMER, MANAGER, STRANGER, Chat
from tests.support.paying import Paying

DEVICE = "TEST2503000017"
OTHER_DEVICE = "01AH2307000009"
JANE = "+254700000001"
"""The customer's number (Kenya)."""
SAM = "255700000001"
"""A stranger's number (Tanzania) with the same last 9 digits, as Telegram sends it (no "+")."""
LINK = re.compile(r"https://t\.me/paygbot_demo_bot\?start=([A-Za-z0-9_-]+)")


async def register(chat: Chat, device: str = DEVICE, phone: str = JANE, name: str = "Jane Wanjiru") -> str:
    """AGENT registers the device's customer; the invite token."""
    registered = await chat.say(AGENT, f"/customer {device} {phone} {name}")
    token = LINK.search(registered.rendered or "")
    assert token, registered.rendered
    return token.group(1)


async def joined(chat: Chat, phone: str = JANE) -> None:
    """Jane is registered and gets her codes in CUSTOMER's chat (she opened the agent's link)."""
    welcome = await chat.say(CUSTOMER, f"/start {await register(chat, phone=phone)}")
    assert "Your device codes will arrive here" in (welcome.rendered or "")


async def shares_contact(chat: Chat, user: Any, phone: str) -> Sent:
    after = chat.api.position
    await chat.api.user_shares_contact(user, phone)
    return await chat.api.wait_for(user.id, after=after, methods=("sendMessage",))


async def code_to(chat: Chat, user: Any, days: int = 7) -> Sent:
    """AGENT asks for a code; the customer's copy of it, in ``user``'s chat."""
    after = chat.api.position
    await chat.api.user_says(AGENT, f"/days {DEVICE} {days}")
    return await chat.api.wait_for(lambda s: s.chat_id == user.id and "Your new code" in (s.rendered or ""),
                                   after=after)


async def customers(chat: Chat) -> list[Customer]:
    async with chat.bot.services.db.read() as session:
        return list((await session.exec(select(Customer).order_by(Customer.id))).all())  # type: ignore[arg-type]


# -- 1. a phone number is the whole number -------------------------------------------------------


@pytest.mark.parametrize(("typed", "region", "expected"), [
    ("+254 712 345 678", "KE", "+254712345678"),
    ("254712345678", "KE", "+254712345678"),  # Telegram's contacts: no "+"
    ("0712345678", "KE", "+254712345678"),  # local, read in PAYGBOT_PHONE_REGION
    ("0712 345-678", "KE", "+254712345678"),
    ("00254712345678", "TZ", "+254712345678"),
    ("0712345678", "TZ", "+255712345678"),
    ("255700000001", "KE", "+255700000001"),  # not a Kenyan number with a stray 255
    ("notaphone", "KE", None),
    ("2547123", "KE", None),
    ("2547******001", "KE", None),  # M-Pesa's masked numbers
])
def test_every_form_of_a_number_becomes_one_international_number(typed: str, region: str,
                                                                  expected: str | None) -> None:
    assert e164(typed, region) == expected


async def test_a_stranger_whose_number_ends_like_the_customers_does_not_get_their_chat(agent: Chat) -> None:
    await joined(agent)
    answer = await shares_contact(agent, STRANGER, SAM)
    assert "not on file" in (answer.rendered or "")
    assert (await agent.bot.services.people.who(STRANGER.id)).kind is Kind.STRANGER
    seen_by_stranger = len(agent.api.sent_to(STRANGER))
    code = await code_to(agent, CUSTOMER)
    assert agent.codes()[0] in (code.rendered or "")
    assert len(agent.api.sent_to(STRANGER)) == seen_by_stranger
    [jane] = await customers(agent)
    assert (jane.phone, jane.telegram_user_id) == (JANE, CUSTOMER.id)


async def test_a_second_account_with_the_customers_number_links_nothing_and_the_customer_is_warned(
        agent: Chat) -> None:
    await joined(agent, phone="0700000001")  # typed locally: the same number as +254700000001
    after = agent.api.position
    answer = await shares_contact(agent, STRANGER, "254700000001")  # a recycled SIM, a second account
    assert "already gets their codes in another Telegram account" in (answer.rendered or "")
    assert "ask your agent for a new invite link" in (answer.rendered or "")
    warning = await agent.api.wait_for(CUSTOMER.id, after=after, methods=("sendMessage",))
    assert "just shared your phone number" in (warning.rendered or "")
    assert (await agent.bot.services.people.who(STRANGER.id)).kind is Kind.STRANGER
    code = await code_to(agent, CUSTOMER)
    assert agent.codes()[0] in (code.rendered or "")
    assert all("Your new code" not in (sent.rendered or "") for sent in agent.api.sent_to(STRANGER))


async def test_the_agents_new_invite_moves_the_chat_and_the_old_chat_is_told(agent: Chat) -> None:
    await joined(agent)
    token = await register(agent, phone="0700000001")  # Jane has a new phone: the agent's say
    after = agent.api.position
    welcome = await agent.say(STRANGER, f"/start {token}")
    assert "Your device codes will arrive here" in (welcome.rendered or "")
    moved = await agent.api.wait_for(CUSTOMER.id, after=after, methods=("sendMessage",))
    assert "Your device codes now go to another Telegram account" in (moved.rendered or "")
    code = await code_to(agent, STRANGER)
    assert agent.codes()[0] in (code.rendered or "")
    [jane] = await customers(agent)
    assert (jane.phone, jane.telegram_user_id) == (JANE, STRANGER.id)


async def test_customer_with_another_countrys_number_ending_alike_is_another_customer(agent: Chat) -> None:
    await joined(agent)
    await register(agent, device=OTHER_DEVICE, phone="+255 700 000 001", name="Sam Mushi")
    jane, sam = await customers(agent)
    assert (jane.name, jane.phone, jane.telegram_user_id) == ("Jane Wanjiru", JANE, CUSTOMER.id)
    assert (sam.name, sam.phone, sam.telegram_user_id) == ("Sam Mushi", "+255700000001", None)
    view = await agent.say(AGENT, f"/device {DEVICE}")
    assert "Customer: Jane Wanjiru, +254700000001 (in Telegram)" in (view.rendered or "")


async def test_money_from_a_number_ending_alike_is_not_the_customers(bot: Paying) -> None:
    await bot.customer(phone=JANE)
    await bot.price(DEVICE, "50")
    # the webhook, with the number as the account
    assert (await bot.pay({"reference": "PAY-255", "amount": "100", "currency": "KES", "account": SAM})).status_code \
        == 200
    notice = await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and "PAY-255" in (s.rendered or ""))
    assert "matches no device" in (notice.rendered or "")
    # Daraja: a till payment, found by the payer's MSISDN alone
    till = {"TransactionType": "Buy Goods", "TransID": "RKTQDM7W6X", "TransTime": "20261122101500",
            "TransAmount": "100.00", "BusinessShortCode": "600638", "BillRefNumber": "", "MSISDN": SAM,
            "FirstName": "SAM", "MiddleName": "", "LastName": "MUSHI"}
    assert (await bot.daraja(till)).json()["ResultCode"] == 0
    await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and "RKTQDM7W6X" in (s.rendered or ""))
    # an M-Pesa confirmation pasted by the agent
    preview = await bot.chat.say(AGENT, "QK71ABC199 Confirmed. Ksh100.00 received from SAM M 255700000001 on "
                                        "22/11/26 at 10:15 AM New M-PESA balance is Ksh1,250.00.")
    assert "It matches no device I know yet" in (preview.rendered or ""), preview.rendered
    stored = await bot.settled(lambda: _all_kept(bot, 2))
    assert {p.reason for p in stored} == {"unknown_account"}
    assert await bot.requests() == [] and bot.chat.sandbox.generations == 0
    # the customer's own number, in any form, still finds her
    assert (await bot.pay({"reference": "PAY-254", "amount": "100", "currency": "KES",
                           "account": "0700000001"})).status_code == 200
    code = await bot.chat.next(CUSTOMER)
    assert "KES 100.00" in (code.rendered or "") and bot.chat.codes()[0] in (code.rendered or "")


async def _all_kept(bot: Paying, count: int) -> list[Any] | None:
    kept = [p for p in await bot.payments() if p.status is PaymentStatus.UNMATCHED]
    return kept if len(kept) >= count else None


# -- 2. a message Telegram refuses is not "delivered" -----------------------------------------------


def broken(monkeypatch: pytest.MonkeyPatch, sentence: str, spoil: Callable[[str], str]) -> None:
    """``Texts.<sentence>`` gives HTML Telegram cannot parse, as a broken translation would."""
    original = getattr(Texts, sentence)

    def spoiled(self: Texts, *args: Any, **kwargs: Any) -> str:
        return spoil(original(self, *args, **kwargs))

    monkeypatch.setattr(Texts, sentence, spoiled)


async def test_a_code_telegram_cannot_parse_goes_again_as_plain_text(agent: Chat,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    await joined(agent)
    broken(monkeypatch, "customer_code", lambda text: text + "\nJane &amp; Co <b>")
    code = await code_to(agent, CUSTOMER)
    [keypad] = agent.codes()
    assert code.parse_mode is None and code.entities == []
    assert code.text == code.rendered
    assert (code.text or "").startswith(f"Your new code has arrived.\n🔑 {DEVICE} — 7 days\n{keypad}\n")
    assert (code.text or "").endswith("Jane & Co ") and "<" not in (code.text or "")
    assert all("not reach" not in (sent.rendered or "") for sent in agent.api.sent_to(AGENT))


async def test_a_code_refused_even_as_plain_text_is_reported_to_whoever_asked(agent: Chat,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    await joined(agent)
    broken(monkeypatch, "customer_code", lambda text: "<b>" + text + "x" * 5000)  # too long as plain text too
    after = agent.api.position
    await agent.api.user_says(AGENT, f"/days {DEVICE} 7")
    told = await agent.api.wait_for(lambda s: s.chat_id == AGENT.id and "refused" in (s.rendered or ""), after=after)
    assert (f"Telegram refused the message about {DEVICE} for the customer Jane Wanjiru, even as plain text"
            in (told.rendered or ""))
    assert all("Your new code" not in (sent.rendered or "") for sent in agent.api.sent_to(CUSTOMER))


async def test_a_reply_telegram_cannot_parse_goes_again_as_plain_text(agent: Chat,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    broken(monkeypatch, "welcome_back", lambda text: text.replace("Hello", "<i>Hello &lt;3", 1))
    answer = await agent.say(AGENT, "/start")
    assert answer.parse_mode is None
    assert (answer.text or "").startswith("Hello <3 Alex.") and "<i>" not in (answer.text or "")
    assert "something went wrong" not in (answer.rendered or "")


async def test_a_customer_who_blocked_the_bot_is_still_left_alone(agent: Chat) -> None:
    await joined(agent)
    agent.api.block(CUSTOMER)
    await agent.say(AGENT, f"/days {DEVICE} 7")
    for _ in range(500):  # the engine marks it delivered once every reader was tried
        async with agent.bot.services.db.read() as session:
            [request] = (await session.exec(select(CodeRequest))).all()
        if request.status is Status.DELIVERED:
            break
        await asyncio.sleep(0.02)
    assert request.status is Status.DELIVERED
    assert all("refused" not in (sent.rendered or "") for sent in agent.api.sent_to(AGENT))
