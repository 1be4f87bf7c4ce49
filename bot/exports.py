"""The CSV exports, as tables: the chat sends them as documents (``/export``), the dashboard as downloads.
One place for their columns, so both give the same file."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot import reports
from bot.portfolio.figures import overdue
from bot.portfolio.service import plan_lines
from bot.reports.export import ExportWords
from bot.services import Services
from storage.models import Role


@dataclass(frozen=True)
class Table:
    filename: str
    header: list[str]
    rows: list[list[object]]

    def csv(self) -> bytes:
        document = io.StringIO()
        writer = csv.writer(document)
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return document.getvalue().encode("utf-8")


def parse_day(text: str) -> date | None:
    """A date typed as YYYY-MM-DD that exists (2026-02-30 does not)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def ledger_refused(first: date, last: date) -> str | None:
    """Why the ledger of ``first``..``last`` is not exported (the name of the sentence that says so), or None."""
    if first > last:
        return "dates_reversed"
    if (last - first).days >= reports.MAX_EXPORT_DAYS:
        return "export_too_long"
    return None


def filename(kind: str, first: date, last: date) -> str:
    """An export's file name: ``paygbot-plans-<day>.csv``, ``paygbot-<first>-to-<last>.csv``…"""
    if kind != "ledger":
        return f"paygbot-{kind}-{first}.csv"
    return f"paygbot-{first}.csv" if first == last else f"paygbot-{first}-to-{last}.csv"


def credit_date(credit_until: datetime | None, tz: ZoneInfo) -> str:
    """The last local day the credit covers (what ``credit_until`` means in ``paygbot plans import``)."""
    if credit_until is None:
        return ""
    return (credit_until.astimezone(tz) - timedelta(microseconds=1)).date().isoformat()


async def plans(services: Services) -> Table:
    """Every plan (its columns import back with ``paygbot plans import``)."""
    now, tz = services.clock.now(), services.settings.tz
    lines = []
    for row in await services.plans.rows():
        plan, device = row.plan, row.device
        active = plan.status == "active"
        lines.append([
            device.label, row.customer.name if row.customer else "", row.customer.phone if row.customer else "",
            row.agent.telegram_id if row.agent and row.agent.role in (Role.AGENT, Role.MANAGER) else "",
            row.agent.name if row.agent else "", plan.currency, plan.total, plan.daily_price, plan.deposit,
            plan.paid, max(Decimal(0), plan.total - plan.paid), plan.status.value,
            plan.started_at.astimezone(tz).date().isoformat(),
            plan.ended_at.astimezone(tz).date().isoformat() if plan.ended_at else "",
            credit_date(device.credit_until, tz),
            overdue(device.credit_until, plan.started_at, now) if active and not device.unlocked else "",
        ])
    header = ["device", "name", "phone", "agent", "agent_name", "currency", "total", "per_day", "deposit", "paid",
              "left", "status", "started", "ended", "credit_until", "days_past_due"]
    today = now.astimezone(tz).date()
    return Table(filename("plans", today, today), header, lines)


async def portfolio(services: Services) -> Table:
    """Every plan as it stands now, with its days past due: the rows the portfolio's figures add up."""
    now, tz = services.clock.now(), services.settings.tz
    lines = await plan_lines(services.db, now)
    header = ["device", "name", "phone", "agent", "status", "total", "per_day", "paid", "left", "credit_until",
              "days_past_due", "at_risk"]
    rows: list[list[object]] = [
        [line.device, line.customer, line.phone, line.agent, line.state.status, line.state.total,
         line.state.daily_price, line.state.paid, line.state.left if line.state.status == "active" else 0,
         credit_date(line.state.credit_until, tz), line.days_past_due,
         "yes" if line.state.status == "active" and line.days_past_due > 30 else "no"] for line in lines]
    today = now.astimezone(tz).date()
    return Table(filename("portfolio", today, today), header, rows)


async def ledger(services: Services, first: date, last: date, words: ExportWords) -> tuple[str, bytes]:
    """The ledger of ``first``..``last`` (one row per code request, then payments that made no code): the
    file's name and its bytes."""
    document = io.StringIO()
    async for piece in reports.export_csv(services.db, first, last, services.settings.tz, words):
        document.write(piece)
    return filename("ledger", first, last), document.getvalue().encode("utf-8")
