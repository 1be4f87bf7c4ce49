"""POST /payments and POST /payments/mpesa/<path> over real HTTP on loopback, against the whole bot:
signatures, malformed bodies, duplicates (also at once), money into days into codes for the customer
and their agent, credit below a day, prepaid days, the daily limit, unmatched money, an unreachable
ERM, a burst of 50 devices, and Daraja's C2B confirmations."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.clock import ManualClock
from bot.payments import sign
from bot.standins.erm import ErmSandbox
from storage.models import CodeKind, PaymentNotice, PaymentStatus, Source, Status
from tests.support.chat import AGENT, CUSTOMER, MANAGER
from tests.support.paying import DEVICE, MPESA_PATH, PHONE, SECRET, Paying, paying


def payment(reference: str = "PAY-1", amount: object = "250", account: str = DEVICE, **more: object) -> dict[str, object]:
    return {"reference": reference, "amount": amount, "currency": "KES", "account": account, **more}


# -- who may post, and what ---------------------------------------------------------------------


async def test_a_missing_or_wrong_signature_is_refused_and_nothing_is_stored(bot: Paying) -> None:
    body = json.dumps(payment()).encode()
    good = sign(SECRET, body)
    for signature in (None, "", "sha256=", "sha256=" + "0" * 64, sign("another-secret", body),
                      good.replace("sha256=", "sha1="), good[:-1], "sha256=ünïcode".encode("latin-1"), good + "00"):
        response = await bot.pay(body, secret=None, signature=signature)
        assert response.status_code == 401, signature
    tampered = json.dumps(payment(amount="2500")).encode()
    assert (await bot.pay(tampered, signature=good)).status_code == 401
    assert await bot.payments() == [] and bot.chat.sandbox.generations == 0
    assert (await bot.pay(body, signature=good.upper().replace("SHA256=", "sha256="))).status_code == 200


async def test_without_a_secret_every_webhook_is_refused(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                                          clock: ManualClock) -> None:
    async with paying(erm_sandbox, erm_url, database_url, clock, PAYGBOT_WEBHOOK_SECRET=None) as bot:
        for secret in (SECRET, "", None):
            assert (await bot.pay(payment(), secret=secret)).status_code == 401
        assert (await bot.http.get("/payments")).status_code == 405
        assert await bot.payments() == []


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[1, 2]", b'"PAY-1"', b"{", b'{"reference": "PAY-1", "amount": NaN, "account": "X1"}',
    json.dumps({"amount": "250", "account": DEVICE}).encode(),
    json.dumps({"reference": "", "amount": "250", "account": DEVICE}).encode(),
    json.dumps({"reference": "   ", "amount": "250", "account": DEVICE}).encode(),
    json.dumps({"reference": ["PAY-1"], "amount": "250", "account": DEVICE}).encode(),
    json.dumps({"reference": "x" * 101, "amount": "250", "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY\n1", "amount": "250", "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "amount": None, "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "amount": 0, "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "amount": "-5", "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "amount": "abc", "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "amount": True, "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "amount": "Infinity", "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "amount": "1e30", "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "amount": "0.00001", "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "amount": {"value": 5}, "account": DEVICE}).encode(),
    json.dumps({"reference": "PAY-1", "amount": "250"}).encode(),
    json.dumps({"reference": "PAY-1", "amount": "250", "account": ""}).encode(),
    json.dumps({"reference": "PAY-1", "amount": "250", "account": [DEVICE]}).encode(),
    json.dumps({"reference": "PAY-1", "amount": "250", "account": DEVICE, "currency": 404}).encode(),
    json.dumps({"reference": "PAY-1", "amount": "250", "account": DEVICE, "paid_at": "yesterday"}).encode(),
])
async def test_a_malformed_body_is_refused_and_nothing_is_stored(bot: Paying, body: bytes) -> None:
    response = await bot.pay(body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert await bot.payments() == []


async def test_a_huge_body_is_refused(bot: Paying) -> None:
    response = await bot.pay(json.dumps(payment(note="x" * 100_000)).encode())
    assert response.status_code == 413 and await bot.payments() == []


# -- money into days into a code ----------------------------------------------------------------


async def test_a_payment_becomes_a_code_for_the_customer_and_their_agent(bot: Paying, clock: ManualClock) -> None:
    await bot.customer()
    await bot.price(DEVICE, "50")
    response = await bot.pay(payment("PAY-1", "260.00", DEVICE, phone="254712345678",
                                     paid_at="2026-11-22T11:58:00+03:00"))
    assert response.status_code == 200 and response.json() == {"status": "accepted", "reference": "PAY-1"}
    to_customer = await bot.chat.next(CUSTOMER)
    to_agent = await bot.chat.next(AGENT)
    [code] = bot.chat.codes()
    credit_until = (clock.now() + timedelta(days=5)).strftime("%d %b %Y")
    for message in (to_customer, to_agent):
        text = message.rendered or ""
        assert code in text and "KES 260.00" in text and "PAY-1" in text and "5 days" in text, text
        assert f"Credit until {credit_until}" in text
    assert "Your payment of KES 260.00" in (to_customer.rendered or "")
    [stored] = await bot.payments()
    assert (stored.provider, stored.reference, stored.amount, stored.currency) == ("webhook", "PAY-1", Decimal("260.00"),
                                                                                   "KES")
    assert (stored.status, stored.days, stored.credit_left, stored.phone) == (PaymentStatus.MATCHED, 5, Decimal("10.00"),
                                                                              "254712345678")
    assert stored.paid_at == datetime(2026, 11, 22, 8, 58, tzinfo=UTC) and stored.received_at == clock.now()
    assert stored.device_id == (await bot.device()).id and (await bot.device()).credit_money == Decimal("10.00")
    [request] = await bot.requests()
    assert (request.source, request.payment_id, request.payment_reference, request.days) == (
        Source.PAYMENT, stored.id, "PAY-1", 5)
    # the 10.00 left over counts toward the next payment: 40 + 10 = one day
    clock.advance(6)
    assert (await bot.pay(payment("PAY-2", "40", PHONE))).status_code == 200  # by the customer's phone
    second = await bot.chat.next(CUSTOMER)
    assert "1 day" in (second.rendered or "") and bot.chat.codes()[1] in (second.rendered or "")
    assert (await bot.device()).credit_money == Decimal(0)
    assert [p.days for p in await bot.payments()] == [5, 1]


async def test_less_than_a_day_is_kept_as_credit_toward_the_next_payment(bot: Paying) -> None:
    await bot.customer()
    await bot.price(DEVICE, "100")
    assert (await bot.pay(payment("P-30", "30"))).status_code == 200
    told = await bot.chat.next(CUSTOMER)
    text = told.rendered or ""
    assert "KES 30.00" in text and "less than one day at KES 100.00" in text and "kept as credit" in text, text
    assert "kept as credit" in ((await bot.chat.next(AGENT)).rendered or "")  # the agent who registered them
    [stored] = await bot.payments()
    assert (stored.status, stored.days, stored.credit_left) == (PaymentStatus.MATCHED, 0, Decimal("30"))
    assert await bot.requests() == [] and bot.chat.sandbox.generations == 0
    assert (await bot.pay(payment("P-80", "80.50"))).status_code == 200
    code = await bot.chat.next(CUSTOMER)
    assert "1 day" in (code.rendered or "") and "KES 80.50" in (code.rendered or "")
    assert (await bot.device()).credit_money == Decimal("10.50")
    await bot.settled(lambda: bot.services.payments and not bot.services.payments.busy)
    assert [p.notified_at is not None for p in await bot.payments()] == [True, False]


async def test_days_over_the_stacking_limit_are_kept_as_prepaid(bot: Paying, clock: ManualClock) -> None:
    await bot.customer()
    await bot.price(DEVICE, "10")
    await bot.chat.say(AGENT, f"/days {DEVICE} 1000")
    await bot.issued(1)
    clock.advance(6)
    assert (await bot.pay(payment("BIG", "2000"))).status_code == 200  # 200 days: 95 fit
    notice = await bot.chat.api.wait_for(lambda sent: sent.chat_id == CUSTOMER.id and "prepaid" in (sent.rendered or ""))
    assert "105 days do not fit" in (notice.rendered or "")
    await bot.issued(2)
    assert [record.code_days for record in bot.chat.sandbox.device(DEVICE).codes] == [1000, 95]
    [stored] = await bot.payments()
    assert (stored.days, stored.prepaid_days) == (200, 105) and (await bot.device()).prepaid_days == 105
    clock.advance(days=30)
    await bot.services.engine.pump()
    await bot.issued(3)
    assert [record.code_days for record in bot.chat.sandbox.device(DEVICE).codes] == [1000, 95, 30]
    assert not bot.chat.sandbox.device(DEVICE).overflowed


async def test_past_the_daily_limit_the_code_waits_for_tomorrow_and_the_customer_is_told(
    bot: Paying, clock: ManualClock
) -> None:
    await bot.customer()
    await bot.price(DEVICE, "50")
    engine = bot.services.engine
    for n in range(10):
        await engine.request(DEVICE, CodeKind.DAYS, 1)
        await bot.issued(n + 1)
        clock.advance(6)
    assert (await bot.pay(payment("LATE", "100"))).status_code == 200
    told = await bot.chat.api.wait_for(lambda s: s.chat_id == CUSTOMER.id and "all its codes" in (s.rendered or ""))
    assert "your code for 2 days comes here on 23 Nov 2026 00:00" in (told.rendered or ""), told.rendered
    [*_, request] = await bot.requests()
    midnight = datetime(2026, 11, 23, tzinfo=UTC)
    assert request.status is Status.QUEUED and request.not_before == midnight
    clock.set(midnight - timedelta(seconds=1))
    await engine.pump()
    assert len(bot.chat.codes()) == 10
    clock.set(midnight)
    await engine.pump()
    code = await bot.chat.api.wait_for(lambda s: s.chat_id == CUSTOMER.id and "KES 100.00" in (s.rendered or "")
                                       and "<code>" in (s.text or ""))
    assert bot.chat.codes()[-1] in (code.rendered or "") and len(bot.chat.codes()) == 11


# -- exactly once ----------------------------------------------------------------------------------


async def test_the_same_reference_five_times_at_once_is_one_payment_and_one_code(bot: Paying) -> None:
    await bot.customer()
    await bot.price(DEVICE, "50")
    body = json.dumps(payment("DUP-1", "500")).encode()
    responses = await asyncio.gather(*(bot.pay(body) for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["status"] for r in responses) == ["accepted"] + ["duplicate"] * 4
    await bot.issued(1)
    again = await bot.pay(body)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    other_amount = await bot.pay(payment("DUP-1", "900"))  # not a repeat: stored beside it, for the managers
    assert other_amount.status_code == 200 and other_amount.json()["status"] == "accepted"
    await bot.chat.next(CUSTOMER)
    await bot.chat.next(MANAGER)
    await asyncio.sleep(0.5)
    [stored, conflict] = await bot.payments()
    assert stored.amount == Decimal("500") and stored.days == 10
    assert (conflict.amount, conflict.status, conflict.duplicate_of, conflict.days) == (
        Decimal("900"), PaymentStatus.UNMATCHED, stored.id, 0)
    assert len(await bot.requests()) == 1 and bot.chat.sandbox.generations == 1 and len(bot.chat.codes()) == 1


async def test_a_burst_of_50_payments_for_50_devices(bot: Paying, erm_sandbox: ErmSandbox) -> None:
    refs = ["TEST2503000017", "01AH2307000009"] + [device.oem_item_id for device in erm_sandbox.devices[2:]]
    assert len(refs) == 50
    for ref in refs:
        await bot.price(ref, "20")
    bodies = [payment(f"BURST-{n:02d}", str(20 * (n + 1)), ref) for n, ref in enumerate(refs)]
    responses = await asyncio.gather(*(bot.pay(body) for body in bodies))
    assert [r.status_code for r in responses] == [200] * 50
    await bot.issued(50, timeout=30)
    for n, ref in enumerate(refs):
        committed = erm_sandbox.device(ref).codes
        assert [record.code_days for record in committed] == [n + 1], ref
    assert erm_sandbox.generations == sum(len(device.codes) for device in erm_sandbox.devices) == 50
    stored = await bot.payments()
    assert len(stored) == 50 and {p.status for p in stored} == {PaymentStatus.MATCHED}
    assert not any(device.overflowed for device in erm_sandbox.devices)


# -- money that matches nothing is kept --------------------------------------------------------------


async def test_unmatched_money_is_kept_the_managers_are_told_and_a_manager_assigns_it(bot: Paying) -> None:
    await bot.customer()
    await bot.price(DEVICE, "50")
    assert (await bot.pay(payment("LOST-1", "150", "NOSUCH0001", phone="254799999999"))).status_code == 200
    notice = await bot.chat.next(MANAGER)
    text = notice.rendered or ""
    assert "LOST-1" in text and "KES 150.00" in text and "NOSUCH0001" in text and "matches no device" in text, text
    assert "/assign LOST-1" in text
    stored = await bot.settled(lambda: _notified(bot))
    assert stored.status is PaymentStatus.UNMATCHED and stored.reason == "unknown_account"
    assert stored.notice is PaymentNotice.MANAGERS
    assert await bot.requests() == [] and bot.chat.sandbox.generations == 0
    assert (await bot.chat.say(AGENT, f"/assign LOST-1 {DEVICE}")).rendered == "That command is for managers."
    assert "No payment has the reference" in ((await bot.chat.say(MANAGER, f"/assign LOST-9 {DEVICE}")).rendered or "")
    after = bot.chat.api.position
    await bot.chat.api.user_says(MANAGER, f"/assign LOST-1 {DEVICE}")
    done = await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and "recorded" in (s.rendered or ""),
                                       after=after)
    assert "LOST-1" in (done.rendered or "") and "= 3 days" in (done.rendered or "")
    await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and "<code>" in (s.text or ""), after=after)
    code = await bot.chat.next(CUSTOMER)
    assert "KES 150.00" in (code.rendered or "") and bot.chat.codes()[0] in (code.rendered or "")
    await bot.issued(1)
    [stored] = await bot.payments()
    manager = await bot.services.people.who(MANAGER.id)
    assert (stored.status, stored.days, stored.assigned_by_id) == (PaymentStatus.MATCHED, 3, manager.person.id)
    again = await bot.chat.say(MANAGER, f"/assign LOST-1 {DEVICE}")
    assert "already" in (again.rendered or "") and len(bot.chat.codes()) == 1


async def test_a_device_without_a_price_keeps_the_money_until_a_manager_taps_assign(bot: Paying) -> None:
    await bot.customer()
    assert (await bot.pay(payment("NOPRICE", "300"))).status_code == 200
    notice = await bot.chat.next(MANAGER)
    assert "has no daily price" in (notice.rendered or "")
    tapped = await bot.chat.tap(MANAGER, notice, f"Assign to {DEVICE}")
    assert "no daily price" in (tapped.rendered or "") and "/price" in (tapped.rendered or "")
    [stored] = await bot.payments()
    assert stored.status is PaymentStatus.UNMATCHED and stored.device_id is not None
    await bot.chat.say(MANAGER, f"/price {DEVICE} 100 KES")
    after = bot.chat.api.position
    await bot.chat.api.user_taps(MANAGER, notice, f"pay:asg:{stored.id}:{stored.device_id}")
    assigned = await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and "recorded" in (s.rendered or ""),
                                           after=after)
    assert "= 3 days" in (assigned.rendered or "")
    code = await bot.chat.next(CUSTOMER)
    assert "KES 300.00" in (code.rendered or "") and "3 days" in (code.rendered or "")
    await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and "<code>" in (s.text or ""), after=after)
    after = bot.chat.api.position
    await bot.chat.api.user_taps(MANAGER, notice, f"Assign to {DEVICE}")
    stale = await bot.chat.api.wait_for(MANAGER, after=after)
    assert "already" in (stale.rendered or "") and len(bot.chat.codes()) == 1


async def test_a_payment_stays_stored_while_the_erm_is_unreachable_and_is_issued_later(
    erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock
) -> None:
    erm_sandbox.fail_next(1000, status=503, paths=["/oves/assignedItems", "/oves/v2/codeHistoryList"])
    async with paying(erm_sandbox, erm_url, database_url, clock) as bot:
        assert (await bot.pay(payment("WAIT-1", "100", "SBX00000000007"))).status_code == 200
        stored = await bot.settled(lambda: _pending(bot))
        assert stored.retry_at is not None and stored.retry_at > clock.now() and stored.reason == "erm_unavailable"
        assert erm_sandbox.generations == 0
        erm_sandbox.clear_faults()
        await bot.price("SBX00000000007", "50")
        clock.advance(seconds=30)
        await bot.services.payments.sweep()
        await bot.issued(1)
        [stored] = await bot.payments()
        assert (stored.status, stored.days, stored.attempts) == (PaymentStatus.MATCHED, 2, 1)
        assert [r.code_days for r in erm_sandbox.device("SBX00000000007").codes] == [2]


async def _notified(bot: Paying) -> object:
    rows = await bot.payments()
    return rows[0] if rows and rows[0].notified_at is not None else None


async def _pending(bot: Paying) -> object:
    rows = await bot.payments()
    return rows[0] if rows and rows[0].status is PaymentStatus.PENDING and rows[0].attempts else None


async def test_a_payment_stored_before_a_stop_is_taken_up_after(bot: Paying, clock: ManualClock) -> None:
    """Stored but never matched (the bot stopped in between): the sweep takes it up."""
    from bot.payments import Incoming

    await bot.price(DEVICE, "25")
    payments = bot.services.payments
    stored, new = await payments.record(Incoming("webhook", "CRASH-1", Decimal(75), DEVICE, "KES"))
    assert new and stored.status is PaymentStatus.PENDING
    await payments.sweep()
    assert (await bot.payments())[0].status is PaymentStatus.PENDING  # not yet: it may be in hand
    clock.advance(seconds=31)
    await payments.sweep()
    await bot.issued(1)
    assert (await bot.payments())[0].days == 3


# -- M-Pesa (Daraja C2B) ----------------------------------------------------------------------------


def daraja(trans_id: str = "RKTQDM7W6S", amount: object = "100.00", account: str = DEVICE,
           msisdn: str = "254712345678") -> dict[str, object]:
    return {
        "TransactionType": "Pay Bill", "TransID": trans_id, "TransTime": "20261122101500", "TransAmount": amount,
        "BusinessShortCode": "600638", "BillRefNumber": account, "InvoiceNumber": "", "OrgAccountBalance": "49197.00",
        "ThirdPartyTransID": "", "MSISDN": msisdn, "FirstName": "JANE", "MiddleName": "", "LastName": "WANJIRU",
    }


async def test_mpesa_confirmations_are_accepted_as_daraja_expects(bot: Paying) -> None:
    await bot.customer()
    await bot.price(DEVICE, "50")
    response = await bot.daraja(daraja())
    assert response.status_code == 200 and response.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    code = await bot.chat.next(CUSTOMER)
    assert "KES 100.00" in (code.rendered or "") and "2 days" in (code.rendered or "")
    again = await bot.daraja(daraja(amount=100))
    assert again.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    [stored] = await bot.payments()
    assert (stored.provider, stored.reference, stored.amount, stored.account, stored.phone, stored.payer) == (
        "mpesa", "RKTQDM7W6S", Decimal("100.00"), DEVICE, "+254712345678", "JANE WANJIRU")  # MSISDN as E.164
    assert stored.paid_at == datetime(2026, 11, 22, 7, 15, tzinfo=UTC)  # 10:15 in Nairobi
    # a till payment (no account typed): the payer's number finds the customer
    bot.chat.clock.advance(6)
    till = await bot.daraja({**daraja("RKTQDM7W6T", "50"), "BillRefNumber": "", "TransactionType": "Buy Goods"})
    assert till.json()["ResultCode"] == 0
    assert "1 day" in ((await bot.chat.next(CUSTOMER)).rendered or "")
    assert bot.chat.sandbox.generations == 2


async def test_mpesa_refuses_a_wrong_path_and_malformed_confirmations(bot: Paying) -> None:
    for path in ("wrong-path-segment-000", MPESA_PATH[:-1], MPESA_PATH + "x", MPESA_PATH.upper()):
        assert (await bot.daraja(daraja(), path=path)).status_code == 404
    assert (await bot.http.post("/payments/mpesa/", content=b"{}")).status_code == 404
    for body in (b"nope", json.dumps({**daraja(), "TransID": ""}).encode(),
                 json.dumps({**daraja(), "TransAmount": "-1"}).encode(),
                 json.dumps({k: v for k, v in daraja().items() if k != "TransAmount"}).encode()):
        response = await bot.daraja(body)
        assert response.status_code == 400 and response.json()["ResultCode"] != 0
    assert await bot.payments() == []


async def test_without_an_mpesa_path_the_route_refuses_everything(erm_sandbox: ErmSandbox, erm_url: str,
                                                                  database_url: str, clock: ManualClock) -> None:
    async with paying(erm_sandbox, erm_url, database_url, clock, PAYGBOT_MPESA_PATH=None) as bot:
        for path in (MPESA_PATH, "None", "null", "x"):
            assert (await bot.daraja(daraja(), path=path)).status_code == 404
        assert await bot.payments() == []


async def test_the_secret_and_the_mpesa_path_never_reach_the_log(bot: Paying, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("paygbot", "uvicorn", "uvicorn.access", "uvicorn.error", "starlette"):
        caplog.set_level(logging.DEBUG, logger=name)
    await bot.price(DEVICE, "50")
    await bot.pay(payment("LOG-1"), secret="not-the-secret")
    await bot.pay(payment("LOG-2"))
    await bot.pay(b"{broken", secret=SECRET)
    await bot.daraja(daraja("LOGMPESA01"))
    await bot.daraja(daraja("LOGMPESA02"), path=MPESA_PATH + "0")
    await bot.issued(1)
    logged = caplog.text
    assert "LOG-2" in logged and "LOGMPESA01" in logged  # the payments are logged…
    assert SECRET not in logged and MPESA_PATH not in logged  # …their secrets are not
