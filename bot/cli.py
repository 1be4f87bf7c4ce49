"""``paygbot``: the command line (see product.md, "Command line").

Every command answers a person: a failure is one plain line on stderr and a non-zero exit,
never a traceback and never a secret. What it prints is worded in :mod:`bot.cli_texts`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from telegram.error import InvalidToken, NetworkError

from bot import cli_texts as say
from bot.config import ConfigError, Settings, load_settings
from bot.erm.backend import check_days, check_product_id
from bot.erm.errors import ErmError
from bot.logs import configure_logging, register_secret
from bot.omnimetic.errors import OmnimeticError

EXIT_FAILURE, EXIT_USAGE = 1, 2


class CommandError(Exception):
    """A failure to report to the person at the terminal in one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line: what is wrong, then the usage; exit 2 as argparse does."""
        usage = " ".join(self.format_usage().split()).removeprefix("usage: ")
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (usage: {usage})\n")


def _device(value: str) -> str:
    try:
        check_product_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _days(value: str) -> int:
    try:
        return check_days(int(value))
    except ValueError:
        raise argparse.ArgumentTypeError(say.bad_days(value)) from None


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(say.bad_port(value))
    return int(value)


def _non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(say.bad_seconds(value))
    return number


def _utility_account(value: str) -> str:
    from bot.omnimetic.client import check_account_id

    try:
        return check_account_id(value)
    except ValueError:
        raise argparse.ArgumentTypeError(say.bad_utility_account(value)) from None


def _year(value: str) -> int:
    if not (value.isascii() and value.isdigit() and len(value) == 4 and 2000 <= int(value) <= 2100):
        raise argparse.ArgumentTypeError(say.bad_year(value))
    return int(value)


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(say.bad_date(value)) from None


def _search(value: str) -> str:
    text = value.strip()
    if not 1 <= len(text) <= 64 or not text.isprintable():
        raise argparse.ArgumentTypeError(say.BAD_SEARCH)
    return text


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(say.bad_count(value))
    return int(value)


# -- commands ---------------------------------------------------------------------------------


async def _erm(settings: Settings, args: argparse.Namespace) -> None:
    from bot.erm.connect import open_erm

    if settings.uses_sandbox:
        print(say.USING_SANDBOX, file=sys.stderr)
    async with open_erm(settings, api=args.api) as erm:
        if args.action == "login":
            result = await erm.login()
            print(say.logged_in(erm.username, erm.base_url, result.user_role))
        elif args.action == "days":
            code = await erm.days_code(args.device, args.days)
            print(code.code)
            print(say.code_detail(args.device, say.days_code(args.days), code.hex, code.otp_count), file=sys.stderr)
        elif args.action == "free":
            code = await erm.free_code(args.device)
            print(code.code)
            print(say.code_detail(args.device, say.FREE_CODE, code.hex, None), file=sys.stderr)
        elif args.action == "reset":
            code = await erm.reset_code(args.device)
            print(code.code)
            print(say.code_detail(args.device, say.RESET_CODE, code.hex, None), file=sys.stderr)
        elif args.action == "history":
            page = await erm.code_history(args.device, args.offset, args.limit)
            print(say.history_header(args.device, page.count, page.offset, len(page.events)))
            for event in page.events:
                print(say.history_line(event))
        elif args.action == "items":
            shown = 0
            async for items in erm.items(search=args.search):
                for item in items:
                    print(say.item_line(item))
                shown += len(items)
            print(say.items_footer(shown, args.search), file=sys.stderr)


async def _omnimetic(settings: Settings, args: argparse.Namespace) -> None:
    from bot.omnimetic.connect import open_omnimetic

    if args.action == "interval" and args.end < args.start:
        raise CommandError(say.DATES_REVERSED)
    if settings.uses_omnimetic_sandbox:
        print(say.USING_OMNIMETIC_SANDBOX, file=sys.stderr)
    async with open_omnimetic(settings) as omnimetic:
        if args.action == "login":
            token = await omnimetic.login()
            print(say.omnimetic_logged_in(omnimetic.client_id, omnimetic.base_url, token.id))
        elif args.action == "info":
            print(say.omnimetic_info(await omnimetic.info(args.account)))
        elif args.action == "history":
            year = args.year or datetime.now(settings.tz).year
            rows = await omnimetic.history(args.account, year)
            print(say.omnimetic_history_header(args.account, year, len(rows)))
            for row in rows:
                print(say.omnimetic_month(row))
        elif args.action == "interval":
            hours = await omnimetic.interval(args.account, args.start, args.end)
            print(say.omnimetic_interval_header(args.account, args.start, args.end, len(hours)))
            for hour in hours:
                print(say.omnimetic_hour(hour))
        elif args.action == "download":
            if args.file.exists() and not args.force:
                raise CommandError(say.file_exists(args.file))
            content = await omnimetic.download(args.account)
            args.file.write_bytes(content)
            print(say.omnimetic_downloaded(args.account, args.file, len(content)))


async def _run(settings: Settings, args: argparse.Namespace) -> None:
    """The bot, long polling, until SIGINT or SIGTERM."""
    from bot.app import running_bot
    from storage.single_runner import AlreadyRunning, only_runner

    if settings.telegram_bot_token is None:
        raise CommandError(say.NO_TOKEN)
    if settings.uses_sandbox:
        print(say.USING_SANDBOX, file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        with only_runner(settings.database_url):
            async with running_bot(settings):
                await stop.wait()
    except AlreadyRunning as exc:
        raise CommandError(say.already_running(exc.ledger, exc.pid)) from None
    except InvalidToken:
        raise CommandError(say.TOKEN_REFUSED) from None
    except NetworkError as exc:
        raise CommandError(say.telegram_unreachable(settings.telegram_base_url, exc.message)) from None


async def _demo(settings: Settings, args: argparse.Namespace) -> None:
    """An offline scripted day through the real handlers, printed as a chat transcript."""
    from bot.demo import DemoFailed, run_demo

    try:
        await run_demo(erm_api=args.api)
    except DemoFailed as exc:
        raise CommandError(say.demo_stopped(exc)) from None


async def _sandbox(settings: Settings, args: argparse.Namespace) -> None:
    from bot.standins.erm import ErmSandbox, serve

    sandbox = ErmSandbox(
        latency=args.latency, device_count=args.devices, min_gap_seconds=args.min_gap, daily_limit=args.daily_limit,
        offers_item_lookup=not args.without_item_lookup,
    )
    print(say.sandbox_serving(args.host, args.port, len(sandbox.devices)), file=sys.stderr)
    try:
        await serve(sandbox, host=args.host, port=args.port)
    except OSError as exc:  # the port is taken, or the host is not this machine's
        raise CommandError(say.sandbox_cannot_listen(args.host, args.port, exc.strerror or str(exc))) from None


async def _db(settings: Settings, args: argparse.Namespace) -> None:
    from storage.migrate import current_revision, upgrade

    if args.action == "backup":
        await _db_backup(settings, args)
        return
    if args.action == "copy":
        await _db_copy(settings, args)
        return
    await upgrade(settings.database_url, currency=settings.currency, phone_region=settings.phone_region)
    print(say.db_upgraded(await current_revision(settings.database_url)))


async def _db_backup(settings: Settings, args: argparse.Namespace) -> None:
    """A consistent copy of the live SQLite ledger (never migrates, never creates a ledger)."""
    from storage.backup import BackupRefused, backup

    try:
        made = await backup(settings.database_url, args.file, force=args.force)
    except BackupRefused as exc:
        raise CommandError(say.backup_refused(exc.reason, exc.path, exc.detail)) from None
    print(say.backup_done(made.source, made.target, made.size, made.revision))


async def _db_copy(settings: Settings, args: argparse.Namespace) -> None:
    """The SQLite ledger into an empty PostgreSQL database (moving to several replicas)."""
    from sqlalchemy.engine import make_url

    from storage.copying import CopyRefused, copy_ledger

    try:
        target = make_url(args.target)
    except ValueError:
        raise CommandError(say.copy_refused("target_not_postgresql")) from None
    if target.password:
        register_secret(str(target.password))  # never in a log line
    try:
        copied = await copy_ledger(settings.database_url, args.target)
    except CopyRefused as exc:
        raise CommandError(say.copy_refused(exc.reason, exc.detail)) from None
    print(say.copy_done(target.render_as_string(hide_password=True), copied.tables, copied.rows, copied.revision))


async def _users(settings: Settings, args: argparse.Namespace) -> None:
    from bot.clock import SystemClock
    from storage import ledger
    from storage.db import Database
    from storage.migrate import upgrade
    from storage.models import Role

    await upgrade(settings.database_url, currency=settings.currency, phone_region=settings.phone_region)
    db = Database(settings.database_url)
    try:
        if args.action == "add":
            async with db.write() as session:
                person = await ledger.put_person(
                    session=session, telegram_id=args.telegram_id, role=Role(args.role), name=args.name,
                    now=SystemClock().now(),
                )
            print(say.user_added(person))
        else:
            async with db.read() as session:
                people = await ledger.list_people(session=session)
            print(say.user_list(people))
    finally:
        await db.dispose()


async def _plans(settings: Settings, args: argparse.Namespace) -> None:
    """``plans import``: onboard a portfolio from a CSV file, all rows or none."""
    from contextlib import asynccontextmanager

    from bot.clock import SystemClock
    from bot.erm.connect import open_erm
    from bot.plans.importing import DeviceLookup, LookupEngine, import_plans
    from bot.plans.plan_file import ImportRefused, read_plans
    from storage.db import Database
    from storage.migrate import upgrade

    clock = SystemClock()
    try:
        plans = read_plans(args.file, settings=settings, clock=clock)  # a bad file never touches the ledger
    except ImportRefused as exc:
        raise CommandError(say.import_file_refused(exc.fault, args.file, exc.detail)) from None
    await upgrade(settings.database_url, currency=settings.currency, phone_region=settings.phone_region)
    db = Database(settings.database_url)

    @asynccontextmanager
    async def lookup() -> AsyncIterator[DeviceLookup]:
        """The ERM, opened only when the ledger does not know a device of the file."""
        if settings.uses_sandbox:
            print(say.USING_SANDBOX, file=sys.stderr)
        async with open_erm(settings, clock) as erm:
            engine = LookupEngine(db=db, erm=erm, settings=settings, clock=clock)
            try:
                yield engine
            finally:
                await engine.close()

    try:
        outcome = await import_plans(plans, db=db, clock=clock, lookup=lookup, dry_run=args.dry_run)
    finally:
        await db.dispose()
    if outcome.errors:
        for error in outcome.errors:
            print(say.import_error(error))
        raise CommandError(say.import_nothing_applied(outcome.bad_rows, outcome.rows))
    print(say.import_done(outcome))


def _telegram_id(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 2**63:
        raise argparse.ArgumentTypeError(say.bad_telegram_id(value))
    return int(value)


def _name(value: str) -> str:
    if not value.strip() or len(value) > 200:
        raise argparse.ArgumentTypeError(say.BAD_NAME)
    return value.strip()


Handler = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]


def build_parser() -> argparse.ArgumentParser:
    """Every command and its arguments, in the order product.md lists them."""
    parser = _Parser(prog="paygbot", description="Unlock codes for Omnivoltaic PAYG devices, in Telegram.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", help="the bot (long polling)")
    run.set_defaults(handler=_run)

    demo = commands.add_parser("demo", help="a scripted day, offline, printed as a chat transcript")
    demo.add_argument("--api", choices=["rest", "graphql"], default="rest",
                      help="the ERM interface the demo's bot speaks to the sandbox")
    demo.set_defaults(handler=_demo)

    sandbox = commands.add_parser("sandbox", help="serve the ERM sandbox over HTTP")
    sandbox.add_argument("--port", type=_port, default=8090)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--latency", type=_non_negative, default=0.0, help="seconds added to every answer")
    sandbox.add_argument("--devices", type=int, default=48, help="how many generated devices it holds")
    sandbox.add_argument("--min-gap", type=_non_negative, default=6.0, help="seconds between two codes of a device")
    sandbox.add_argument("--daily-limit", type=_positive, default=10, help="codes per device per UTC day")
    sandbox.add_argument("--without-item-lookup", action="store_true",
                         help="answer 404 to assignedItems/{id}, as an ERM without it")
    sandbox.set_defaults(handler=_sandbox)

    erm = commands.add_parser("erm", help="use the ERM client by hand")
    erm.add_argument("--api", choices=["rest", "graphql"], default=None,
                     help="the ERM interface for this command (default: ERM_API)")
    actions = erm.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    actions.add_parser("login", help="log in and report the role")
    days = actions.add_parser("days", help="generate a days code")
    days.add_argument("device", type=_device)
    days.add_argument("days", type=_days)
    for name, what in (("free", "a free code (unlocks for good)"), ("reset", "a reset code (0 days, locked)")):
        action = actions.add_parser(name, help=f"generate {what}")
        action.add_argument("device", type=_device)
    history = actions.add_parser("history", help="the device's committed codes, newest first")
    history.add_argument("device", type=_device)
    history.add_argument("--offset", type=int, default=0)
    history.add_argument("--limit", type=int, default=10)
    items = actions.add_parser("items", help="the distributor's items (devices), with their ids")
    items.add_argument("--search", type=_search, help="only those whose ids or description contain TEXT")
    erm.set_defaults(handler=_erm)

    omnimetic = commands.add_parser("omnimetic", help="use the Omnimetic client by hand (energy use)")
    omnimetic_actions = omnimetic.add_subparsers(dest="action", required=True, metavar="ACTION",
                                                 parser_class=_Parser)
    omnimetic_actions.add_parser("login", help="get an access token and report the account id")
    info = omnimetic_actions.add_parser("info", help="a utility service account's address and names")
    info.add_argument("account", type=_utility_account)
    usage_history = omnimetic_actions.add_parser("history", help="a year's energy use, month by month")
    usage_history.add_argument("account", type=_utility_account)
    usage_history.add_argument("--year", type=_year, default=None, help="YYYY (default: this year)")
    interval = omnimetic_actions.add_parser("interval", help="energy use hour by hour between two dates")
    interval.add_argument("account", type=_utility_account)
    interval.add_argument("--from", dest="start", type=_iso_date, required=True, help="YYYY-MM-DD")
    interval.add_argument("--to", dest="end", type=_iso_date, required=True, help="YYYY-MM-DD")
    download = omnimetic_actions.add_parser("download", help="Omnimetic's spreadsheet of the account (.xlsx)")
    download.add_argument("account", type=_utility_account)
    download.add_argument("file", type=Path, help="the .xlsx file to write (its folder must exist)")
    download.add_argument("--force", action="store_true", help="replace the file if it exists")
    omnimetic.set_defaults(handler=_omnimetic)

    plans = commands.add_parser("plans", help="payment plans in bulk")
    plan_actions = plans.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    plans_import = plan_actions.add_parser(
        "import", help="onboard devices, customers and plans from a CSV file: all rows, or none if one is bad")
    plans_import.add_argument("file", type=Path, help="the CSV file (UTF-8, a header row: device, phone, name, "
                              "total, per_day, currency; optional deposit, paid, credit_until, agent)")
    plans_import.add_argument("--dry-run", action="store_true", help="check every row and say what it would do; "
                              "apply nothing")
    plans.set_defaults(handler=_plans)

    users = commands.add_parser("users", help="managers and agents")
    user_actions = users.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    add = user_actions.add_parser("add", help="give a Telegram user a role")
    add.add_argument("--telegram-id", type=_telegram_id, required=True)
    add.add_argument("--role", choices=["agent", "manager"], required=True)
    add.add_argument("--name", type=_name)
    user_actions.add_parser("list", help="everyone with a role")
    users.set_defaults(handler=_users)

    db = commands.add_parser("db", help="the ledger")
    db_actions = db.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    db_actions.add_parser("upgrade", help="apply migrations (also done at start)")
    db_backup = db_actions.add_parser("backup", help="a consistent copy of the live SQLite ledger")
    db_backup.add_argument("file", type=Path, help="the copy to write (its folder must exist)")
    db_backup.add_argument("--force", action="store_true", help="replace the file if it exists")
    db_copy = db_actions.add_parser("copy", help="the SQLite ledger into an empty PostgreSQL database")
    db_copy.add_argument("target", help="postgresql://user:password@host:5432/db (empty)")
    db.set_defaults(handler=_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = load_settings()
        level = logging.DEBUG if args.verbose else logging.INFO if args.command == "run" else logging.WARNING
        configure_logging(settings, level=level)
        asyncio.run(handler(settings, args))
    except ConfigError as exc:
        print(f"paygbot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ErmError as exc:
        print(f"paygbot: {say.erm_failure(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except OmnimeticError as exc:
        print(f"paygbot: {say.omnimetic_failure(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except CommandError as exc:
        print(f"paygbot: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, SQLAlchemyError) as exc:
        print(f"paygbot: {say.database_failure(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last resort: a person gets one line, the log gets the traceback
        logging.getLogger("paygbot").debug("unexpected failure", exc_info=exc)
        print(f"paygbot: {say.unexpected(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
