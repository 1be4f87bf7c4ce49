"""The ledger as a CSV export: one row per code request, then the payments that made no code,
streamed in chunks; headers and words in the manager's language, times, amounts and codes as a
spreadsheet reads them."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.reports.summary import day_bounds, is_copy
from storage import ledger
from storage.db import Database
from storage.models import Payment, PaymentStatus

MAX_EXPORT_DAYS = 366


class ExportWords(Protocol):
    """The export's words in the reader's language (``bot.texts.Texts`` has them; reports do not import it)."""

    def export_columns(self) -> list[str]: ...

    def export_kind(self, kind: str) -> str: ...

    def export_payment_reason(self, unmatched: bool) -> str: ...

    def status(self, status: str) -> str: ...

    def reason(self, stored: str | None, tz: ZoneInfo | None = None, *, fits: int | None = None,
               until: datetime | None = None) -> str: ...


async def export_csv(db: Database, first: date, last: date, tz: ZoneInfo, words: ExportWords) -> AsyncIterator[str]:
    """The ledger of [first, last] (local days) as CSV text, one row per code request, then the
    payments that made no code (unmatched, or credit below a day) — yielded in pieces. Headers and
    words are in the manager's language; times, amounts and codes stay as a spreadsheet reads them."""
    start, _ = day_bounds(first, tz)
    _, end = day_bounds(last, tz)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")  # a BOM: spreadsheets then read the text as UTF-8
    writer.writerow(words.export_columns())
    async with db.report() as session:
        async for row in ledger.export_rows(session=session, start=start, end=end):
            request = row.request
            writer.writerow([
                request.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), request.device_ref,
                row.customer or "", words.export_kind(request.kind.value),
                request.days if request.days is not None else "", request.code or "",
                words.status(request.status.value),
                words.reason(request.reason, tz, fits=request.refused_fits, until=request.refused_until),
                row.asked_by or "", request.payment_reference or "", row.amount if row.amount is not None else "",
                row.currency or "",
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


def _payment_row(payment: Payment, tz: ZoneInfo, words: ExportWords) -> list[object]:
    what = words.export_payment_reason(unmatched=payment.status is PaymentStatus.UNMATCHED)
    return [payment.received_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), payment.account, "",
            words.export_kind("payment"), "", "", words.status(payment.status.value), what, "", payment.reference,
            payment.amount, payment.currency]
