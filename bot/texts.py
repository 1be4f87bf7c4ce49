"""Every sentence a person reads, in one place.

Chat replies, command-line lines and error messages are built here so that wording stays
consistent and can be translated later without hunting through the code.
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

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.erm.models import CodeEvent
    from bot.erm.sandbox import ErmSandbox
    from storage.models import Person

# -- command line -----------------------------------------------------------------------------

CLI_USING_SANDBOX = "No ERM_USERNAME/ERM_PASSWORD set: using the embedded ERM sandbox (codes are not real)."


def cli_logged_in(username: str, base_url: str, role: str | None) -> str:
    return f"Logged in to {base_url} as {username}" + (f" (role {role})." if role else ".")


def cli_code_detail(device: str, what: str, hex_code: str, count: int | None) -> str:
    count_text = f", ERM count {count}" if count is not None else ""
    return f"device {device}: {what}, hash {hex_code}{count_text}"


def cli_history_header(device: str, total: int, offset: int, shown: int) -> str:
    if not total:
        return f"No codes committed for {device} yet."
    return f"Codes of {device}, newest first ({offset + 1}-{offset + shown} of {total}):"


def cli_history_line(event: CodeEvent) -> str:
    days = {"FREECODE": "free", "RESETCODE": "reset"}.get(event.code_type, f"{event.code_days} days")
    when = event.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"#{event.code_number:<4} {when}  {event.code_type:<9} {days:<9} {event.code_dec_string}"


def cli_sandbox_serving(host: str, port: int, sandbox: ErmSandbox) -> str:
    return (
        f"ERM sandbox on http://{host}:{port} - log in as test@example.com / test1234; "
        f"{len(sandbox.devices)} devices, e.g. TEST2503000017. Ctrl-C stops it."
    )


def cli_erm_failure(exc: ErmError) -> str:
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


def cli_db_upgraded(revision: str | None) -> str:
    return f"The ledger is at schema revision {revision}."


def cli_user_added(person: Person) -> str:
    name = f" ({person.name})" if person.name else ""
    return f"{person.telegram_id}{name} is now {'a manager' if person.role == 'manager' else 'an agent'}."


def cli_user_list(people: Sequence[Person]) -> str:
    if not people:
        return "No managers or agents yet. Add one with: paygbot users add --telegram-id N --role manager"
    rows = [f"{'telegram id':<14} {'role':<8} {'active':<7} name"]
    rows += [f"{p.telegram_id:<14} {p.role:<8} {'yes' if p.active else 'no':<7} {p.name}" for p in people]
    return "\n".join(rows)


def cli_database_failure(exc: Exception) -> str:
    """A database or file problem in one line, without the SQL or the URL (it may hold a password)."""
    reason = getattr(exc, "orig", None) or exc
    text = str(reason).splitlines()[0] if str(reason) else type(reason).__name__
    return f"the ledger could not be used: {text}. Check DATABASE_URL."
