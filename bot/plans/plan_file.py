"""A plan file as read (``paygbot plans import``): its columns, each row's values checked on their own, and
what can be wrong with a row or with the file. Nothing here reads the ledger: :mod:`bot.plans.importing`
checks the rows against it and applies them."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.config import Settings
from bot.erm.backend import check_product_id
from bot.phones import e164
from bot.plans.service import Bad, Terms, check_terms, parse_currency, parse_money

REQUIRED = ("device", "phone", "name", "total", "per_day", "currency")
OPTIONAL = ("deposit", "paid", "credit_until", "agent")
COLUMNS = REQUIRED + OPTIONAL
READ_ALSO = ("status",)
"""Read when present (``/export plans`` writes it), never required: a plan that ended is left out."""
MAX_NAME = 200
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class FileFault(StrEnum):
    """Why a file is not read at all (nothing is checked, nothing applied)."""

    NOT_FOUND = "not_found"
    NOT_A_FILE = "not_a_file"
    UNREADABLE = "unreadable"
    NOT_CSV = "not_csv"
    EMPTY = "empty"
    NO_ROWS = "no_rows"
    MISSING_COLUMNS = "missing_columns"
    REPEATED_COLUMN = "repeated_column"


class ImportRefused(Exception):
    """The file cannot be imported as a whole; ``detail`` names what (an OS error, the missing columns…)."""

    def __init__(self, fault: FileFault, detail: str = "") -> None:
        super().__init__(fault.value, detail)
        self.fault, self.detail = fault, detail


class Fault(StrEnum):
    """What is wrong with one row."""

    EMPTY = "empty"
    """A required value is empty (``column``)."""
    TOO_MANY_VALUES = "too_many_values"
    """More values than the header has columns (an unquoted comma?)."""
    BAD_DEVICE_ID = "bad_device_id"
    UNKNOWN_DEVICE = "unknown_device"
    ERM_UNAVAILABLE = "erm_unavailable"
    BAD_PHONE = "bad_phone"
    BAD_NAME = "bad_name"
    BAD_AMOUNT = "bad_amount"
    """``column``: total, per_day, deposit or paid."""
    BAD_CURRENCY = "bad_currency"
    PRICE_ABOVE_TOTAL = "price_above_total"
    DEPOSIT_ABOVE_TOTAL = "deposit_above_total"
    PAID_OFF = "paid_off"
    """Paid is the total or more: only plans still being paid are imported."""
    BAD_DATE = "bad_date"
    DATE_TOO_FAR = "date_too_far"
    """credit_until beyond the stacking limit (``detail``: its days)."""
    BAD_AGENT = "bad_agent"
    SAME_DEVICE = "same_device"
    """The device of an earlier row (``other_line``), by this id or another of its ids."""
    SAME_PHONE_OTHER_NAME = "same_phone_other_name"
    """The phone of an earlier row (``other_line``) with another name (``detail``)."""
    OTHER_CUSTOMER = "other_customer"
    """The device's customer has another phone (``detail``)."""
    PHONE_OTHER_NAME = "phone_other_name"
    """The phone is on file for a customer of another name (``detail``)."""
    UNLOCKED = "unlocked"
    HAS_PLAN = "has_plan"
    """The device has a plan of other terms, or of another customer."""


@dataclass(frozen=True)
class RowError:
    line: int
    fault: Fault
    value: str
    column: str | None = None
    other_line: int | None = None
    detail: str | None = None


# -- reading the file --------------------------------------------------------------------------------


@dataclass
class Row:
    """One row as read: its values (stripped) and what they parse to (None: missing or bad, see ``errors``)."""

    line: int
    raw: dict[str, str]
    errors: list[RowError] = field(default_factory=list)
    device_ref: str | None = None
    phone: str | None = None
    name: str | None = None
    terms: Terms | None = None
    total: Decimal | None = None
    paid: Decimal = Decimal(0)
    credit_until: datetime | None = None
    agent: int | None = None

    def bad(self, fault: Fault, value: str, *, column: str | None = None, other_line: int | None = None,
            detail: str | None = None) -> None:
        self.errors.append(RowError(self.line, fault, value, column, other_line, detail))


def read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    """The file's rows (not blank ones) with their line numbers, each a ``{column: value}`` of the known
    columns (values stripped; extra columns left out); raises :class:`ImportRefused`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImportRefused(FileFault.NOT_FOUND) from None
    except IsADirectoryError:
        raise ImportRefused(FileFault.NOT_A_FILE) from None
    except OSError as exc:
        raise ImportRefused(FileFault.UNREADABLE, exc.strerror or type(exc).__name__) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRefused(FileFault.NOT_CSV, f"not UTF-8 text at byte {exc.start}") from None
    if "\x00" in text:
        raise ImportRefused(FileFault.NOT_CSV, "it holds binary data")
    if not text.strip():
        raise ImportRefused(FileFault.EMPTY)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for record in reader:
            if any(value.strip() for value in record):
                records.append((line, record))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ImportRefused(FileFault.NOT_CSV, f"line {reader.line_num}: {exc}") from None
    if not records:  # commas and spaces only
        raise ImportRefused(FileFault.EMPTY)
    (_, header), body = records[0], records[1:]
    names = [name.strip().casefold() for name in header]
    where: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in COLUMNS or name in READ_ALSO:
            if name in where:
                raise ImportRefused(FileFault.REPEATED_COLUMN, name)
            where[name] = index
    missing = [name for name in REQUIRED if name not in where]
    if missing:
        raise ImportRefused(FileFault.MISSING_COLUMNS, ", ".join(missing))
    if not body:
        raise ImportRefused(FileFault.NO_ROWS)
    rows = []
    for line, record in body:
        values = {name: record[index].strip() if index < len(record) else "" for name, index in where.items()}
        extra = [value.strip() for value in record[len(header):] if value.strip()]
        if extra:
            values[""] = ",".join(extra)  # more values than columns: reported by _parse
        rows.append((line, values))
    return rows


def _parse(line: int, raw: dict[str, str], *, region: str, tz: ZoneInfo, latest: date) -> Row:
    """Each value checked on its own (no ledger); the row's errors are in its ``errors``."""
    row = Row(line, raw)
    if raw.get(""):
        row.bad(Fault.TOO_MANY_VALUES, raw[""])
    for column in REQUIRED:
        if not raw[column]:
            row.bad(Fault.EMPTY, "", column=column)
    if ref := raw["device"]:
        try:
            row.device_ref = check_product_id(ref)
        except ValueError as exc:
            row.bad(Fault.BAD_DEVICE_ID, ref, detail=str(exc))
    if phone := raw["phone"]:
        row.phone = e164(phone, region)
        if row.phone is None:
            row.bad(Fault.BAD_PHONE, phone)
    if name := " ".join(raw["name"].split()):
        if len(name) > MAX_NAME:
            row.bad(Fault.BAD_NAME, name)
        else:
            row.name = name
    amounts: dict[str, Decimal | None] = {}
    for column in ("total", "per_day", "deposit", "paid"):
        value = raw.get(column, "")
        optional = column in OPTIONAL
        if not value:
            amounts[column] = Decimal(0) if optional else None
            continue
        amounts[column] = parse_money(value, zero=optional)
        if amounts[column] is None:
            row.bad(Fault.BAD_AMOUNT, value, column=column)
    currency = None
    if raw["currency"]:
        currency = parse_currency(raw["currency"])
        if currency is None:
            row.bad(Fault.BAD_CURRENCY, raw["currency"])
    total, per_day, deposit, paid = (amounts[c] for c in ("total", "per_day", "deposit", "paid"))
    if total is not None and per_day is not None and deposit is not None and currency is not None:
        terms = Terms(total=total, daily_price=per_day, currency=currency, deposit=deposit)
        bad = check_terms(terms)
        if bad is Bad.PRICE_ABOVE_TOTAL:
            row.bad(Fault.PRICE_ABOVE_TOTAL, raw["per_day"], detail=raw["total"])
        elif bad is Bad.DEPOSIT_ABOVE_TOTAL:
            row.bad(Fault.DEPOSIT_ABOVE_TOTAL, raw["deposit"], detail=raw["total"])
        else:
            row.terms = terms
    row.total = total
    if paid is not None:
        row.paid = paid  # at or above the total: refused unless the ledger has the plan (see _check)
    if value := raw.get("credit_until", ""):
        day = _date(value)
        if day is None:
            row.bad(Fault.BAD_DATE, value)
        elif day > latest:
            row.bad(Fault.DATE_TOO_FAR, value)
        else:
            row.credit_until = end_of_day(day, tz)
    if value := raw.get("agent", ""):
        if value.isascii() and value.isdigit() and 0 < int(value) < 2**63:
            row.agent = int(value)
        else:
            row.bad(Fault.BAD_AGENT, value)
    return row


def _date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def end_of_day(day: date, tz: ZoneInfo) -> datetime:
    """The end of ``day`` where the distributor is: the next local midnight, aware UTC."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)


def same_name(one: str, other: str) -> bool:
    return " ".join(one.split()).casefold() == " ".join(other.split()).casefold()


# -- the file ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanFile:
    """A file read and each row checked on its own (:func:`read_plans`): what :func:`import_plans` takes."""

    name: str
    rows: list[Row]
    ended: list[int] = field(default_factory=list)
    """Lines of plans that ended (an ``/export plans`` file's ``status``: paid off, repossessed): left out."""


ENDED = ("paid_off", "repossessed")


def read_plans(path: Path, *, settings: Settings, clock: Clock) -> PlanFile:
    """Read the file and check each value of each row (no ledger yet); raises :class:`ImportRefused` for a file
    that cannot be read as one, before anything touches the ledger."""
    latest = (clock.now() + timedelta(days=settings.max_stacked_days)).astimezone(settings.tz).date()
    rows, ended = [], []
    for line, raw in read_csv(path):
        if raw.get("status", "").strip().lower() in ENDED:  # history from another ledger, not a plan to onboard
            ended.append(line)
        else:
            rows.append(_parse(line, raw, region=settings.phone_region, tz=settings.tz, latest=latest))
    return PlanFile(path.name, rows, ended)
