"""The managers' figures: the daily summary, its chart, and the ledger as a CSV export.

Figures come from aggregate queries (storage.ledger), so a year of a million codes costs a
few indexed lookups; the export streams its rows in chunks.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from storage import ledger
from storage.db import Database
from storage.models import CONFIRMATION_COPY, CodeKind, Customer, Device, Payment, PaymentStatus, Person

if TYPE_CHECKING:
    from bot.texts import Texts

CHART_DAYS = 14
EXPIRING_WITHIN = timedelta(days=3)
MAX_EXPORT_DAYS = 366


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC start and end of a local day."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


@dataclass
class AgentLine:
    name: str
    codes: int = 0
    days: int = 0
    cash: dict[str, Decimal] = field(default_factory=dict)
    cash_payments: int = 0


@dataclass
class Summary:
    """One local day at a glance."""

    day: date
    codes: dict[CodeKind, int]
    days_issued: int
    payments: dict[str, tuple[int, Decimal]]
    unmatched_payments: int
    agents: list[AgentLine]
    bad_total: int
    bad: list[tuple[str, str, str | None]]
    queued: int
    oldest_queued: datetime | None
    expiring: list[tuple[Device, Customer | None]]
    unconfirmed: list[Payment] = field(default_factory=list)
    """M-Pesa messages pasted by agents that M-Pesa's own confirmation (Daraja) has not matched (yet)."""


async def summary(db: Database, day: date, tz: ZoneInfo, now: datetime, *, confirmations: bool = True) -> Summary:
    """The figures of ``day`` (local), with the queue and the credit ending as of ``now``; ``confirmations``:
    M-Pesa's confirmations arrive (Daraja), so pasted payments not matched by one are listed."""
    start, end = day_bounds(day, tz)
    async with db.read() as session:
        by_kind = await ledger.generated_by_kind(session=session, start=start, end=end)
        by_person = await ledger.generated_by_person(session=session, start=start, end=end)
        bad_total, bad = await ledger.ended_badly(session=session, start=start, end=end)
        payments = await ledger.payments_between(session=session, start=start, end=end)
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
    return Summary(
        day=day,
        codes={kind: count for kind, count, _ in by_kind},
        days_issued=sum(days for kind, _, days in by_kind if kind is CodeKind.DAYS),
        payments={currency: (int(count), Decimal(amount)) for currency, (count, amount) in sorted(totals.items())},
        unmatched_payments=sum(1 for payment in payments if payment.status is PaymentStatus.UNMATCHED),
        agents=sorted(agents.values(), key=lambda line: (-line.codes, line.name)),
        bad_total=bad_total,
        bad=[(ref, status.value, reason) for ref, status, reason in bad],
        queued=queued,
        oldest_queued=oldest,
        expiring=list(expiring),
        unconfirmed=[payment for payment in payments if confirmations and payment.provider == PASTED
                     and payment.confirmed_at is None],
    )


PASTED = "mpesa_pasted"
"""``bot.payments.Provider.MPESA_PASTED`` (not imported: bot.payments needs this module, through delivery)."""


def is_copy(payment: Payment) -> bool:
    """A provider's confirmation kept beside the pasted payment it confirms: not money of its own."""
    return payment.duplicate_of is not None and payment.reason == CONFIRMATION_COPY


def _name(person: Person | None, person_id: int) -> str:
    if person is not None:
        return person.name or str(person.telegram_id)
    return f"#{person_id}"


async def chart(db: Database, last_day: date, tz: ZoneInfo, words: Texts) -> bytes:
    """A PNG bar chart of codes and payments per day, for the ``CHART_DAYS`` days up to ``last_day``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.figure import Figure

    first_day = last_day - timedelta(days=CHART_DAYS - 1)
    start, _ = day_bounds(first_day, tz)
    _, end = day_bounds(last_day, tz)
    async with db.read() as session:
        codes = Counter(when.astimezone(tz).date() for when in await ledger.generated_times(session=session,
                                                                                          start=start, end=end))
        paid = Counter(when.astimezone(tz).date() for when in await ledger.payment_times(session=session,
                                                                                       start=start, end=end))
    days = [first_day + timedelta(days=offset) for offset in range(CHART_DAYS)]
    labels = words.chart_labels()
    figure = Figure(figsize=(8, 3.6), dpi=100)
    axes = figure.subplots()
    positions = range(len(days))
    axes.bar([p - 0.2 for p in positions], [codes[d] for d in days], width=0.4, label=labels["codes"], color="#2a9d8f")
    axes.bar([p + 0.2 for p in positions], [paid[d] for d in days], width=0.4, label=labels["payments"],
             color="#e9c46a")
    axes.set_xticks(list(positions), [words.short_date(d) for d in days], rotation=45, ha="right", fontsize=8)
    axes.set_title(labels["title"])
    axes.legend(loc="upper left", fontsize=8)
    axes.yaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    picture = io.BytesIO()
    figure.savefig(picture, format="png")
    pyplot.close("all")
    return picture.getvalue()


async def export_csv(db: Database, first: date, last: date, tz: ZoneInfo, words: Texts) -> AsyncIterator[str]:
    """The ledger of [first, last] (local days) as CSV text, one row per code request, then the
    payments that made no code (unmatched, or credit below a day) — yielded in pieces. Headers and
    words are in the manager's language; times, amounts and codes stay as a spreadsheet reads them."""
    start, _ = day_bounds(first, tz)
    _, end = day_bounds(last, tz)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")  # a BOM: spreadsheets then read the text as UTF-8
    writer.writerow(words.export_columns())
    async with db.read() as session:
        async for row in ledger.export_rows(session=session, start=start, end=end):
            request = row.request
            writer.writerow([
                request.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), request.device_ref,
                row.customer or "", words.export_kind(request.kind.value),
                request.days if request.days is not None else "", request.code or "",
                words.status(request.status.value), words.reason(request.reason, tz), row.asked_by or "",
                request.payment_reference or "", row.amount if row.amount is not None else "", row.currency or "",
            ])
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        payments = await ledger.payments_between(session=session, start=start, end=end)
        coded = await ledger.payments_with_codes(session=session, payment_ids=[p.id for p in payments if p.id])
    for payment in payments:
        if payment.id not in coded and not is_copy(payment):
            writer.writerow(_payment_row(payment, tz, words))
    yield buffer.getvalue()


def _payment_row(payment: Payment, tz: ZoneInfo, words: Texts) -> list[object]:
    what = words.export_payment_reason(unmatched=payment.status is PaymentStatus.UNMATCHED)
    return [payment.received_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), payment.account, "",
            words.export_kind("payment"), "", "", words.status(payment.status.value), what, "", payment.reference,
            payment.amount, payment.currency]
