"""``download-data``'s spreadsheet: a real ``.xlsx`` (openpyxl) with a sheet "Monthly" (the last 12
months) and a sheet "Hourly" (the last 7 days), in kWh. The document shows only that the answer is
an ``.xlsx`` file; the sheets and columns are the sandbox's own choice."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from openpyxl import Workbook

from bot.omnimetic.models import MONTHS
from bot.standins.omnimetic.data import HourFigure, MonthFigure

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MONTHLY_HEADER = ("Month", "Year", "On-peak (kWh)", "Off-peak (kWh)", "Total (kWh)", "Amount (cents)")
HOURLY_HEADER = ("Date (UTC)", "Hour", "On-peak (kWh)", "Off-peak (kWh)", "Total (kWh)")


def spreadsheet(months: list[MonthFigure], hours: list[HourFigure], made_at: datetime) -> bytes:
    """The workbook's bytes (``made_at``, the sandbox's now, is its creation time)."""
    book = Workbook()
    monthly = book.active
    assert monthly is not None
    monthly.title = "Monthly"
    monthly.append(MONTHLY_HEADER)
    for month in months:
        monthly.append([MONTHS[month.month - 1], month.year, month.on_wh / 1000, month.off_wh / 1000,
                        month.total_wh / 1000, month.amount_cents])
    hourly = book.create_sheet("Hourly")
    hourly.append(HOURLY_HEADER)
    for hour in hours:
        # Excel has no time zones: the hour's UTC start, written without one (the header says UTC)
        hourly.append([hour.start.astimezone(UTC).replace(tzinfo=None), f"{hour.start:%H:%M}", hour.on_wh / 1000,
                       hour.off_wh / 1000, hour.total_wh / 1000])
    for row in hourly.iter_rows(min_row=2, max_col=1):
        row[0].number_format = "yyyy-mm-dd hh:mm"
    for sheet in (monthly, hourly):
        for column in "ABCDEF":
            sheet.column_dimensions[column].width = 16
    made = made_at.astimezone(UTC).replace(tzinfo=None)
    book.properties.created = book.properties.modified = made
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
