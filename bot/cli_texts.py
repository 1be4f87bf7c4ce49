"""Every line ``paygbot`` (the command line, :mod:`bot.cli`) prints: for the engineer at the server,
in plain English, never translated (the chat's sentences are in :mod:`bot.texts`).

The argparse help of each argument stays beside it in :func:`bot.cli.build_parser`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.erm.errors import (
    ErmAuthError,
    ErmError,
    ErmOutcomeUnknown,
    ErmRateLimited,
    ErmRefused,
    ErmUnavailable,
)
from bot.omnimetic.errors import (
    OmnimeticAuthError,
    OmnimeticError,
    OmnimeticNotFound,
    OmnimeticRefused,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date
    from pathlib import Path

    from bot.erm.models import CodeEvent, Item
    from bot.omnimetic.models import HourUsage, MonthUsage, ServiceAccount
    from bot.plans.importing import Outcome
    from bot.plans.plan_file import RowError
    from storage.models import Person

# -- starting the bot ---------------------------------------------------------------------------

USING_SANDBOX = "No ERM_USERNAME/ERM_PASSWORD set: using the embedded ERM sandbox (codes are not real)."
NO_TOKEN = "TELEGRAM_BOT_TOKEN is not set: get a token from @BotFather and put it in the environment or .env."
TOKEN_REFUSED = "Telegram refused TELEGRAM_BOT_TOKEN: check it with @BotFather."


def telegram_unreachable(base_url: str, reason: str) -> str:
    return f"Telegram could not be reached at {base_url} ({reason}). Check the network or TELEGRAM_BASE_URL."


def already_running(ledger: Path, pid: str) -> str:
    return (f"Another paygbot run (process {pid or '?'}) is using the ledger {ledger}: one process per SQLite "
            "ledger. Stop it first, or give each bot its own DATABASE_URL (several processes on one ledger need "
            "PostgreSQL).")


def demo_stopped(reason: object) -> str:
    return f"the demo stopped: {reason}"


def unexpected(exc: Exception) -> str:
    return f"something unexpected went wrong ({type(exc).__name__}). Run again with -v to see the details."


# -- arguments ----------------------------------------------------------------------------------


def bad_days(value: str) -> str:
    return f"{value!r}: days must be a whole number from 1 to 1095"


def bad_port(value: str) -> str:
    return f"{value!r} is not a port number (0 to 65535)"


def bad_seconds(value: str) -> str:
    return f"{value!r} is not a number of seconds"


def bad_count(value: str) -> str:
    return f"{value!r} is not a whole number from 1 up"


def bad_telegram_id(value: str) -> str:
    return f"{value!r} is not a numeric Telegram user id"


BAD_NAME = "a name has 1 to 200 characters"
BAD_SEARCH = "a search text has 1 to 64 printable characters"

# -- the ERM by hand ----------------------------------------------------------------------------


def logged_in(username: str, base_url: str, role: str | None) -> str:
    return f"Logged in to {base_url} as {username}" + (f" (role {role})." if role else ".")


def code_detail(device: str, what: str, hex_code: str, count: int | None) -> str:
    count_text = f", ERM count {count}" if count is not None else ""
    return f"device {device}: {what}, hash {hex_code}{count_text}"


def days_code(days: int) -> str:
    return f"{days} days"


FREE_CODE = "free (unlocks for good)"
RESET_CODE = "reset (0 days, locked)"


def history_header(device: str, total: int, offset: int, shown: int) -> str:
    if not total:
        return f"No codes committed for {device} yet."
    return f"Codes of {device}, newest first ({offset + 1}-{offset + shown} of {total}):"


def history_line(event: CodeEvent) -> str:
    days = {"FREECODE": "free", "RESETCODE": "reset"}.get(event.code_type, f"{event.code_days} days")
    when = event.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"#{event.code_number:<4} {when}  {event.code_type:<9} {days:<9} {event.code_dec_string}"


def item_line(item: Item) -> str:
    ids = "  ".join(value or "-" for value in (item.erm_id, item.oem_item_id, item.seller_item_id))
    return f"{ids}  {item.life_cycle or '-':<10} {item.description or ''}".rstrip()


def items_footer(count: int, search: str | None) -> str:
    matching = f" matching {search!r}" if search else ""
    return f"{count} items{matching}." if count else f"No items{matching}."


# -- Omnimetic by hand ---------------------------------------------------------------------------

USING_OMNIMETIC_SANDBOX = ("No OMNIMETIC_CLIENT_ID/OMNIMETIC_SECRET set: using the embedded Omnimetic sandbox "
                           "(figures are made up).")
DATES_REVERSED = "--from is after --to"


def bad_utility_account(value: str) -> str:
    return f"{value!r}: a utility service account id is 1 to 64 letters, digits, '-' or '_'"


def bad_year(value: str) -> str:
    return f"{value!r} is not a year such as 2026"


def bad_date(value: str) -> str:
    return f"{value!r} is not a date as YYYY-MM-DD"


def file_exists(path: Path) -> str:
    return f"{path} exists; choose another file or add --force"


def omnimetic_logged_in(client_id: str, base_url: str, account_id: str) -> str:
    return f"Logged in to {base_url} as client {client_id} (account {account_id})."


def omnimetic_info(account: ServiceAccount) -> str:
    lines = [f"utility service account {account.id}"]
    if account.address is not None and account.address.line():
        lines.append(f"  address: {account.address.line()}")
    if account.legal_names:
        lines.append(f"  names:   {', '.join(account.legal_names)}")
    if account.linked_date is not None:
        lines.append(f"  linked:  {account.linked_date:%Y-%m-%d %H:%M} UTC")
    return "\n".join(lines)


def omnimetic_history_header(account: str, year: int, count: int) -> str:
    if not count:
        return f"No figures for {account} in {year}."
    return f"Energy use of {account} in {year}, month by month (kWh; amount in the account's currency):"


def omnimetic_month(row: MonthUsage) -> str:
    return (f"{row.month:<9} {row.year}  total {row.energy_kwh:9.1f}  on-peak {row.on_peak_kwh:9.1f}  "
            f"off-peak {row.off_peak_kwh:9.1f}  amount {row.amount}")


def omnimetic_interval_header(account: str, start: date, end: date, count: int) -> str:
    if not count:
        return f"No hourly figures for {account} from {start} to {end}."
    return f"Energy use of {account} from {start} to {end}, hour by hour (kWh, UTC):"


def omnimetic_hour(hour: HourUsage) -> str:
    return (f"{hour.date:%Y-%m-%d %H:%M}  total {hour.total_usage:7.2f}  on-peak {hour.on_peak_usage:7.2f}  "
            f"off-peak {hour.off_peak_usage:7.2f}")


def omnimetic_downloaded(account: str, path: Path, size: int) -> str:
    return f"Wrote Omnimetic's spreadsheet of {account} to {path} ({size} bytes)."


def omnimetic_failure(exc: OmnimeticError) -> str:
    if isinstance(exc, OmnimeticAuthError):
        return f"Omnimetic login failed: {exc.message}. Check OMNIMETIC_CLIENT_ID and OMNIMETIC_SECRET."
    if isinstance(exc, OmnimeticNotFound):
        return f"Omnimetic has no such account: {exc.message}"
    if isinstance(exc, OmnimeticRefused):
        return f"Omnimetic refused: {exc.message}"
    return f"{exc.message}. Try again later."


def sandbox_cannot_listen(host: str, port: int, why: str) -> str:
    return f"the sandbox cannot listen on {host}:{port} ({why}); choose another --port"


def sandbox_serving(host: str, port: int, devices: int) -> str:
    return (
        f"ERM sandbox on http://{host}:{port} (REST), http://{host}:{port}/graphql (GraphQL) - "
        f"log in as test@example.com / test1234; Omnimetic sandbox on http://{host}:{port}/omnimetic/api; "
        f"{devices} devices, e.g. TEST2503000017. Ctrl-C stops it."
    )


def erm_failure(exc: ErmError) -> str:
    """One line for a failed ERM call, with the ERM's own words where it gave some."""
    if isinstance(exc, ErmAuthError):
        return f"ERM login failed: {exc.message}. Check ERM_USERNAME and ERM_PASSWORD."
    if isinstance(exc, ErmRateLimited):
        return f"the ERM says not now: {exc.message}"
    if isinstance(exc, ErmRefused):
        return f"the ERM refused: {exc.message}"
    if isinstance(exc, ErmUnavailable):
        return f"{exc.message}. Nothing was generated; try again later."
    if isinstance(exc, ErmOutcomeUnknown):
        return f"{exc.message}. A code may have been generated: check `paygbot erm history` before trying again."
    return exc.message


# -- people and the ledger ----------------------------------------------------------------------


def db_upgraded(revision: str | None) -> str:
    return f"The ledger is at schema revision {revision}."


def user_added(person: Person) -> str:
    name = f" ({person.name})" if person.name else ""
    return f"{person.telegram_id}{name} is now {'a manager' if person.role == 'manager' else 'an agent'}."


def user_list(people: Sequence[Person]) -> str:
    if not people:
        return "No managers or agents yet. Add one with: paygbot users add --telegram-id N --role manager"
    rows = [f"{'telegram id':<14} {'role':<8} {'active':<7} name"]
    rows += [f"{p.telegram_id:<14} {p.role:<8} {'yes' if p.active else 'no':<7} {p.name}" for p in people]
    return "\n".join(rows)


def database_failure(exc: Exception) -> str:
    """A database or file problem in one line, without the SQL or the URL (it may hold a password)."""
    reason = getattr(exc, "orig", None) or exc
    text = str(reason).splitlines()[0] if str(reason) else type(reason).__name__
    return f"the ledger could not be used: {text}. Check DATABASE_URL."


_BACKUP_REFUSED = {
    "not_sqlite": "paygbot db backup copies a SQLite ledger, and DATABASE_URL is not one: back up that "
                  "database with its own tools (pg_dump for PostgreSQL).",
    "no_ledger": "there is no ledger at {path}: check DATABASE_URL.",
    "no_folder": "the folder {path} does not exist: create it first, or choose another file.",
    "target_exists": "{path} already exists: choose another file, or add --force to replace it.",
    "not_a_file": "{path} is not a file: choose a file name for the copy.",
    "same_file": "{path} is the ledger itself: choose another file for the copy.",
    "failed": "the backup could not be written to {path}: {detail}. Nothing was changed.",
}


def backup_refused(reason: str, path: object, detail: str = "") -> str:
    """Why ``paygbot db backup`` made no copy, in one line."""
    return _BACKUP_REFUSED[reason].format(path=path, detail=detail)


def file_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def backup_done(source: object, target: object, size: int, revision: str | None) -> str:
    schema = f"schema revision {revision}" if revision else "no schema revision (an empty ledger)"
    return f"Copied the ledger {source} to {target}: {file_size(size)}, {schema}."


_COPY_REFUSED = {
    "source_not_sqlite": "paygbot db copy copies a SQLite ledger (DATABASE_URL) into PostgreSQL; DATABASE_URL is "
                         "not a SQLite ledger.",
    "target_not_postgresql": "The copy goes into a PostgreSQL database: give its URL, "
                             "postgresql://user:password@host:5432/db.",
    "no_source": "There is no ledger at DATABASE_URL to copy.",
    "source_behind": "The ledger is at schema revision {detail}, older than this paygbot's: run paygbot db upgrade "
                     "first (or start the bot once), then copy.",
    "target_not_empty": "{detail} already has tables: the copy goes into an empty database only (create one, "
                        "or empty this one).",
    "failed": "The copy failed and the target was left as it was: {detail}",
}


def copy_refused(reason: str, detail: str = "") -> str:
    """Why ``paygbot db copy`` copied nothing, in one line."""
    return _COPY_REFUSED[reason].format(detail=detail)


def copy_done(target: str, tables: int, rows: int, revision: str | None) -> str:
    return (f"Copied the ledger into {target}: {rows:,} rows in {tables} tables, schema revision {revision}. "
            "Set DATABASE_URL to it, then start the bot(s).")


# -- importing plans ----------------------------------------------------------------------------

_COLUMNS = "device, phone, name, total, per_day, currency"

_FILE_REFUSED = {
    "not_found": "{path}: no such file.",
    "not_a_file": "{path} is a folder, not a CSV file.",
    "unreadable": "{path} cannot be read ({detail}).",
    "not_csv": "{path} is not a CSV file ({detail}): save it as CSV, UTF-8.",
    "empty": "{path} is empty: a CSV file of plans starts with a header row (" + _COLUMNS + ").",
    "no_rows": "{path} has a header but no rows: nothing to import.",
    "missing_columns": "{path}: the header row lacks {detail} (required columns: " + _COLUMNS + "). "
                       "Nothing was applied.",
    "repeated_column": "{path}: the header row names the column {detail} twice. Nothing was applied.",
}


def import_file_refused(fault: str, path: object, detail: str) -> str:
    """Why ``paygbot plans import`` read no row of the file, in one line."""
    return _FILE_REFUSED[fault].format(path=path, detail=detail)


def _shown(value: str, width: int = 60) -> str:
    """A value of the file as it is shown in a report: on one line, cut when long."""
    text = " ".join(value.split())
    return text if len(text) <= width else text[:width - 1] + "..."


_ROW_FAULTS = {
    "too_many_values": "more values than the header row has columns; quote values with commas ({value})",
    "bad_device_id": "not a device id: {detail} ({value})",
    "unknown_device": "unknown device: neither the ledger nor the ERM knows it ({value})",
    "erm_unavailable": "the ERM did not answer, try again ({value})",
    "bad_phone": "not a phone number ({value})",
    "bad_name": "a name has at most 200 characters ({value})",
    "bad_currency": "not a currency code of 3 letters such as KES ({value})",
    "price_above_total": "per_day is above the total of {detail} ({value})",
    "deposit_above_total": "the deposit is above the total of {detail} ({value})",
    "paid_off": "already paid off: paid is not below the total of {detail}; import only plans still being paid "
                "({value})",
    "bad_date": "credit_until is not a date as YYYY-MM-DD ({value})",
    "date_too_far": "credit_until is further ahead than the stacking limit allows ({value})",
    "bad_agent": "agent is not the Telegram id of an active agent or manager of the bot; add them with "
                 "paygbot users add ({value})",
    "same_device": "the same device as line {other_line} ({value})",
    "same_phone_other_name": "the same phone as line {other_line}, where the name is {detail} ({value})",
    "other_customer": "the device already has a customer with another phone, {detail} ({value})",
    "phone_other_name": "the phone is on file for a customer named {detail} ({value})",
    "unlocked": "the device is unlocked for good ({value})",
    "has_plan": "the device has a plan already; change it with /plan ({value})",
}


def import_error(error: RowError) -> str:
    """One bad row: ``line N: what is wrong (the value)``."""
    if error.fault == "empty":
        what = f"{error.column} is empty"
    elif error.fault == "bad_amount":
        zero = " or 0" if error.column in ("deposit", "paid") else ""
        what = f"{error.column} is not an amount such as 30000 or 30000.50{zero} ({_shown(error.value)})"
    else:
        what = _ROW_FAULTS[error.fault].format(value=_shown(error.value), detail=_shown(error.detail or ""),
                                               other_line=error.other_line)
    return f"line {error.line}: {what}"


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def import_nothing_applied(bad_rows: int, rows: int) -> str:
    return f"nothing applied: {bad_rows} of {_count(rows, 'row has', 'rows have')} errors"


def import_done(outcome: Outcome) -> str:
    """``M rows: X new plans, Y unchanged, Z new customers``, and whether they were applied."""
    figures = (f"{_count(outcome.rows, 'row', 'rows')}: {_count(outcome.new_plans, 'new plan', 'new plans')}, "
               f"{outcome.unchanged} unchanged, {_count(outcome.new_customers, 'new customer', 'new customers')}")
    if outcome.ended:
        figures += f", {_count(outcome.ended, 'ended plan', 'ended plans')} (paid off or repossessed) left out"
    if outcome.dry_run:
        return f"{figures} — dry run, nothing applied"
    return f"{figures} — applied" if outcome.applied else f"{figures} — nothing to change"
