"""The daily summary's figures, from aggregate queries (storage.ledger): a year of a million codes
costs a few indexed lookups."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.clock import day_bounds
from bot.portfolio import service as portfolio
from bot.reports.figures import AgentLine, EndedBadly, Expiring, PortfolioLine, Summary, Unconfirmed
from storage import ledger
from storage.db import Database
from storage.models import CONFIRMATION_COPY, CodeKind, Payment, PaymentStatus, Person

EXPIRING_WITHIN = timedelta(days=3)
PASTED = "mpesa_pasted"
"""``bot.payments.Provider.MPESA_PASTED`` (not imported: the figures need none of the payments service)."""


async def summary(db: Database, day: date, tz: ZoneInfo, now: datetime, *, confirmations: bool = True) -> Summary:
    """The figures of ``day`` (local), with the queue and the credit ending as of ``now``; ``confirmations``:
    M-Pesa's confirmations arrive (Daraja), so pasted payments not matched by one are listed."""
    start, end = day_bounds(day, tz)
    async with db.report() as session:
        by_kind = await ledger.generated_by_kind(session=session, start=start, end=end)
        by_person = await ledger.generated_by_person(session=session, start=start, end=end)
        bad_total, bad = await ledger.ended_badly(session=session, start=start, end=end)
        payments = await ledger.payments_between(session=session, start=start, end=end)
        reversals = await ledger.reversals_between(session=session, start=start, end=end)
        queued, oldest = await ledger.queue_depth(session=session)
        expiring = await ledger.credit_ending(session=session, now=now, until=now + EXPIRING_WITHIN)
        people = {person.id: person for person, _ in await ledger.agents_with_codes(session=session, start=start,
                                                                                     end=end)}
    payments = [payment for payment in payments if not is_copy(payment)]
    agents: dict[int | None, AgentLine] = {}
    for person_id, codes, days in by_person:
        if person_id is None:
            continue
        line = agents.setdefault(person_id, AgentLine(_name(people.get(person_id), person_id)))
        line.codes, line.days = codes, days
    totals: dict[str, list[Decimal | int]] = defaultdict(lambda: [0, Decimal(0)])
    for payment in payments:
        totals[payment.currency][0] += 1  # type: ignore[operator]
        totals[payment.currency][1] += payment.amount  # type: ignore[operator]
        if payment.recorded_by_id is not None:
            line = agents.setdefault(payment.recorded_by_id,
                                     AgentLine(_name(people.get(payment.recorded_by_id), payment.recorded_by_id)))
            line.cash_payments += 1
            line.cash[payment.currency] = line.cash.get(payment.currency, Decimal(0)) + payment.amount
    taken_back: dict[str, list[Decimal | int]] = defaultdict(lambda: [0, Decimal(0)])
    for reversal, currency in reversals:
        taken_back[currency][0] += 1  # type: ignore[operator]
        taken_back[currency][1] += reversal.amount  # type: ignore[operator]
    line = await portfolio.summary_line(db, day, tz, now)
    return Summary(
        day=day,
        portfolio=PortfolioLine(line.par30, line.par30_before, line.collection, line.collection_before)
        if line else None,
        codes={str(kind): count for kind, count, _ in by_kind},
        days_issued=sum(days for kind, _, days in by_kind if kind is CodeKind.DAYS),
        payments={currency: (int(count), Decimal(amount)) for currency, (count, amount) in sorted(totals.items())},
        unmatched_payments=sum(1 for payment in payments if payment.status is PaymentStatus.UNMATCHED),
        agents=sorted(agents.values(), key=lambda line: (-line.codes, line.name)),
        bad_total=bad_total,
        bad=[EndedBadly(ref, status.value, reason, fits, until) for ref, status, reason, fits, until in bad],
        queued=queued,
        oldest_queued=oldest,
        expiring=[Expiring(device.label, device.credit_until, customer.name if customer else None,
                           customer.phone if customer else None)
                  for device, customer in expiring if device.credit_until is not None],
        reversed={currency: (int(count), Decimal(amount)) for currency, (count, amount) in sorted(taken_back.items())},
        unconfirmed=[Unconfirmed(payment.reference, payment.amount, payment.currency) for payment in payments
                     if confirmations and payment.provider == PASTED and payment.confirmed_at is None],
    )


def is_copy(payment: Payment) -> bool:
    """A provider's confirmation kept beside the pasted payment it confirms: not money of its own."""
    return payment.duplicate_of is not None and payment.reason == CONFIRMATION_COPY


def _name(person: Person | None, person_id: int) -> str:
    if person is not None:
        return person.name or str(person.telegram_id)
    return f"#{person_id}"
