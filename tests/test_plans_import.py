"""``paygbot plans import`` run as a person runs it, on the embedded ERM sandbox and a ledger of the test's own:
a good file applies in full, a re-run changes nothing, a dry run applies nothing, and a file with bad rows
gets every error with its line number and changes nothing at all."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col, select

from bot import cli_texts as say
from bot.plans.plan_file import Fault, FileFault, ImportRefused, RowError, read_csv
from storage import ledger
from storage.db import Database, async_url
from storage.models import Customer, Plan, PlanEvent, PlanStatus, Role
from tests.support.cli import arun, run

TZ = "Africa/Nairobi"
AGENT, FORMER_AGENT = 7001, 7002
HEADER = "device,phone,name,total,per_day,currency,deposit,paid,credit_until,agent"


def env(database_url: str) -> dict[str, str]:
    """No ERM credentials (the embedded sandbox answers), the test's ledger, days in Nairobi."""
    return {"DATABASE_URL": database_url, "PAYGBOT_TIMEZONE": TZ}


def write(path: Path, *lines: str, bom: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + "\r\n".join(lines).encode() + b"\r\n")
    return path


def snapshot(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the ledger (read in a thread of its own: async tests call it too)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _snapshot(database_url)).result()


async def _snapshot(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            return {table: sorted((await connection.execute(text(f'SELECT * FROM "{table}"'))).all(), key=repr)
                    for table in tables}
    finally:
        await engine.dispose()


def local_day(days: int) -> date:
    return datetime.now(ZoneInfo(TZ)).date() + timedelta(days=days)


async def test_a_good_file_applies_a_rerun_changes_nothing_and_a_dry_run_applies_nothing(
        tmp_path: Path, database_url: str, db: Database) -> None:
    now = datetime.now(UTC)
    later_credit = now + timedelta(days=100)
    async with db.write() as session:
        agent = await ledger.put_person(session=session, telegram_id=AGENT, role=Role.AGENT, name="Ann", now=now)
        known, _ = await ledger.add_device(session=session, ids=["SBX00000000002"], now=now)
        known.credit_until = later_credit  # later than the file's date: kept
        session.add(known)
    credit_day = local_day(30)
    plans = write(
        tmp_path / "plans.csv",
        # the header as another system writes it: any case, spaces, and columns the import does not read
        " Device ,PHONE,Name,Total,Per_Day,Currency,Deposit,Paid,Credit_Until,Agent,Status,Left",
        f"TEST2503000017,0712 345 678,Jane Wanjiru,30000,100,KES,2000,5000,{credit_day},{AGENT},active,25000",
        "SBX00000000001,+254 722 000 001,John Otieno,20000.50,50,kes,,,,,active,",
        f"SBX00000000002,0712345678, jane  WANJIRU ,30000,100,KES,0,0,{local_day(3)},,active,30000",
        bom=True,
    )
    before = snapshot(database_url)

    dry = run("plans", "import", str(plans), "--dry-run", cwd=tmp_path, env=env(database_url))
    assert dry.code == 0, dry.err
    assert dry.out.strip() == "3 rows: 3 new plans, 0 unchanged, 2 new customers — dry run, nothing applied"
    after_dry = snapshot(database_url)
    assert after_dry["plan"] == before["plan"] == [] and after_dry["customer"] == before["customer"] == []
    assert after_dry["plan_event"] == [] and after_dry["device"] != before["device"]  # the devices were learned

    done = run("plans", "import", str(plans), cwd=tmp_path, env=env(database_url))
    assert done.code == 0, done.err
    assert done.out.strip() == "3 rows: 3 new plans, 0 unchanged, 2 new customers — applied"
    async with db.read() as session:
        devices = await ledger.devices_by_ids(session=session, refs=["TEST2503000017", "SBX00000000001",
                                                                     "SBX00000000002"])
        test, sbx1, sbx2 = (devices[ref] for ref in ("TEST2503000017", "SBX00000000001", "SBX00000000002"))
        customers = {c.phone: c for c in (await session.exec(select(Customer))).all()}
        by_device = {p.device_id: p for p in (await session.exec(select(Plan))).all()}
        events = (await session.exec(select(PlanEvent).order_by(col(PlanEvent.id)))).all()
    jane, john = customers["+254712345678"], customers["+254722000001"]
    assert set(customers) == {jane.phone, john.phone}
    assert (jane.name, jane.registered_by_id) == ("Jane Wanjiru", agent.id)
    assert (john.name, john.registered_by_id) == ("John Otieno", None)
    assert sbx2.id == known.id  # the device the ledger knew, by its OEM id
    expected = {  # device: customer, total, per day, currency, deposit, paid
        test.id: (jane.id, Decimal(30000), Decimal(100), "KES", Decimal(2000), Decimal(5000)),
        sbx1.id: (john.id, Decimal("20000.50"), Decimal(50), "KES", Decimal(0), Decimal(0)),
        sbx2.id: (jane.id, Decimal(30000), Decimal(100), "KES", Decimal(0), Decimal(0)),
    }
    assert {device_id: (p.customer_id, p.total, p.daily_price, p.currency, p.deposit, p.paid)
            for device_id, p in by_device.items()} == expected
    assert all(p.opening_paid == p.paid and p.status is PlanStatus.ACTIVE for p in by_device.values())
    assert [(d.customer_id, d.daily_price, d.currency) for d in (test, sbx1, sbx2)] == [
        (jane.id, Decimal(100), "KES"), (john.id, Decimal(50), "KES"), (jane.id, Decimal(100), "KES")]
    nairobi_midnight = datetime.combine(credit_day + timedelta(days=1), datetime.min.time(), ZoneInfo(TZ))
    assert test.credit_until == nairobi_midnight.astimezone(UTC)  # the end of that day in Nairobi: 21:00 UTC
    assert sbx1.credit_until is None and sbx2.credit_until == later_credit
    assert [(e.plan_id, e.kind, e.total, e.paid, e.deposit) for e in events] == sorted(
        (p.id, "imported", p.total, p.paid, p.deposit) for p in by_device.values())

    applied = snapshot(database_url)
    again = run("plans", "import", str(plans), cwd=tmp_path, env=env(database_url))
    assert again.code == 0, again.err
    assert again.out.strip() == "3 rows: 0 new plans, 3 unchanged, 0 new customers — nothing to change"
    assert snapshot(database_url) == applied


async def test_every_bad_row_is_reported_with_its_line_and_nothing_changes(
        tmp_path: Path, database_url: str, db: Database) -> None:
    now = datetime.now(UTC)
    async with db.write() as session:
        await ledger.put_person(session=session, telegram_id=AGENT, role=Role.AGENT, name="Ann", now=now)
        await ledger.put_person(session=session, telegram_id=FORMER_AGENT, role=Role.AGENT, name="Bo", now=now)
        await ledger.deactivate(session=session, telegram_id=FORMER_AGENT)
        owned, _ = await ledger.add_device(session=session, ids=["SBX00000000020"], now=now)
        await ledger.put_customer(session=session, device=owned, phone="+254700000020", name="Old Owner",
                                  registered_by_id=None, now=now)
        unlocked, _ = await ledger.add_device(session=session, ids=["SBX00000000021"], now=now)
        unlocked.unlocked = True
        session.add(unlocked)
        planned, _ = await ledger.add_device(session=session, ids=["SBX00000000022"], now=now)
        customer = await ledger.put_customer(session=session, device=planned, phone="+254711000001",
                                             name="Mary Achieng", registered_by_id=None, now=now)
        await ledger.add_plan(session=session, plan=Plan(device_id=planned.id or 0, customer_id=customer.id,
                                                         total=Decimal(30000), daily_price=Decimal(100),
                                                         currency="KES", started_at=now))
    # the sandbox's devices learned first (a dry run of a good file), so that the bad file has nothing to learn
    warm = write(tmp_path / "warm.csv", HEADER, "SBX00000000009,0712 000 009,Ida,300,40,KES,,,,")
    assert run("plans", "import", str(warm), "--dry-run", cwd=tmp_path, env=env(database_url)).code == 0
    rows = [
        "SBX00000000003,0712 000 003,Amina Said,30000,100,KES,,,,",                 # 2: good
        "NOSUCHDEVICE9,0712 000 004,Bob,30000,100,KES,,,,",                          # 3
        "bad id!,0712 000 005,Carl,30000,100,KES,,,,",                               # 4
        "SBX00000000004,,Dan,30000,100,KES,,,,",                                     # 5
        "SBX00000000005,12345,Eve,30000,100,KES,,,,",                                # 6
        "SBX00000000006,0712 000 007,Fay,30k,-5,KES,abc,x,,",                        # 7
        "SBX00000000007,0712 000 008,Gus,30000,100,KESH,,,,",                        # 8
        "SBX00000000008,0712 000 010,Hal,300,400,KES,,,,",                           # 9
        "SBX00000000010,0712 000 011,Ike,300,40,KES,500,,,",                         # 10
        "SBX00000000011,0712 000 012,Jo,300,40,KES,,300,,",                          # 11
        "SBX00000000012,0712 000 013,Kim,300,40,KES,,,2026-02-30,",                  # 12
        f"SBX00000000013,0712 000 014,Lu,300,40,KES,,,{local_day(2000)},",          # 13
        "SBX00000000014,0712 000 015,Mo,300,40,KES,,,,424242",                       # 14
        f"SBX00000000015,0712 000 016,Ned,300,40,KES,,,,{FORMER_AGENT}",            # 15
        "SELLERSBX00000000003,0712 000 017,Oti,300,40,KES,,,,",                      # 16: line 2's device
        "SBX00000000020,0712 000 018,Pam,300,40,KES,,,,",                            # 17
        "SBX00000000016,0711 000 001,Someone Else,300,40,KES,,,,",                   # 18
        "SBX00000000021,0712 000 019,Quin,300,40,KES,,,,",                           # 19
        "SBX00000000022,0711 000 001,Mary Achieng,31000,100,KES,,,,",                # 20
        "SBX00000000017,+254 712 000 003,Not Amina,300,40,KES,,,,",                  # 21
        "SBX00000000018,0712 000 020,Rose,300,40,KES,,,,,old system,surplus",       # 22: one value too many
        "SBX00000000019,0712 000 021,,300,40,KES,,,,",                               # 23
    ]
    bad = write(tmp_path / "bad.csv", HEADER + ",note", *rows)
    before = snapshot(database_url)
    result = run("plans", "import", str(bad), cwd=tmp_path, env=env(database_url))
    assert result.code == 1
    assert result.out.splitlines() == [
        "line 3: unknown device: neither the ledger nor the ERM knows it (NOSUCHDEVICE9)",
        "line 4: not a device id: a device id is 1 to 64 letters, digits, '-', '_', '.' or ':' (bad id!)",
        "line 5: phone is empty",
        "line 6: not a phone number (12345)",
        "line 7: total is not an amount such as 30000 or 30000.50 (30k)",
        "line 7: per_day is not an amount such as 30000 or 30000.50 (-5)",
        "line 7: deposit is not an amount such as 30000 or 30000.50 or 0 (abc)",
        "line 7: paid is not an amount such as 30000 or 30000.50 or 0 (x)",
        "line 8: not a currency code of 3 letters such as KES (KESH)",
        "line 9: per_day is above the total of 300 (400)",
        "line 10: the deposit is above the total of 300 (500)",
        "line 11: already paid off: paid is not below the total of 300; import only plans still being paid (300)",
        "line 12: credit_until is not a date as YYYY-MM-DD (2026-02-30)",
        f"line 13: credit_until is further ahead than the stacking limit allows ({local_day(2000)})",
        "line 14: agent is not the Telegram id of an active agent or manager of the bot; add them with paygbot "
        "users add (424242)",
        f"line 15: agent is not the Telegram id of an active agent or manager of the bot; add them with paygbot "
        f"users add ({FORMER_AGENT})",
        "line 16: the same device as line 2 (SELLERSBX00000000003)",
        "line 17: the device already has a customer with another phone, +254700000020 (SBX00000000020)",
        "line 18: the phone is on file for a customer named Mary Achieng (0711 000 001)",
        "line 19: the device is unlocked for good (SBX00000000021)",
        "line 20: the device has a plan already; change it with /plan (SBX00000000022)",
        "line 21: the same phone as line 2, where the name is Amina Said (Not Amina)",
        "line 22: more values than the header row has columns; quote values with commas (surplus)",
        "line 23: name is empty",
    ]
    assert result.err.strip().splitlines()[-1] == "paygbot: nothing applied: 21 of 22 rows have errors"
    assert "Traceback" not in result.err
    assert snapshot(database_url) == before


async def test_a_file_that_cannot_be_imported_gets_one_line_and_no_ledger_is_touched(tmp_path: Path) -> None:
    missing = write(tmp_path / "missing.csv", "Device,Phone,Name,Total,Per_Day", "TEST2503000017,0712 345 678,Jane,300,40")
    nowhere = env(f"sqlite:///{tmp_path / 'nowhere.db'}")
    results = await asyncio.gather(*(arun("plans", "import", str(path), cwd=tmp_path, env=nowhere)
                                     for path in (missing, tmp_path / "nowhere.csv")))
    assert [(result.code, result.out, result.err.strip()) for result in results] == [
        (1, "", f"paygbot: {missing}: the header row lacks currency (required columns: device, phone, name, total, "
                "per_day, currency). Nothing was applied."),
        (1, "", f"paygbot: {tmp_path / 'nowhere.csv'}: no such file."),
    ]
    assert not (tmp_path / "nowhere.db").exists()
    usage = run("plans", "import", cwd=tmp_path, env=nowhere)
    assert usage.code == 2 and "required: file" in usage.err and len(usage.err.strip().splitlines()) == 1


def test_what_makes_a_file_unreadable_is_said_in_one_line(tmp_path: Path) -> None:
    """The same refusals, read in this process (each a process of its own would only be slower)."""
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "binary.csv").write_bytes(b"\x89\xffPNG\r\n")
    cases = {
        write(tmp_path / "commas.csv", ",,, ,", ",,,"): "commas.csv is empty: a CSV file of plans",
        write(tmp_path / "empty.csv", "", bom=True): "empty.csv is empty: a CSV file of plans starts with a header "
                                                     "row (device, phone, name, total, per_day, currency).",
        write(tmp_path / "header.csv", HEADER): "header.csv has a header but no rows: nothing to import.",
        write(tmp_path / "twice.csv", HEADER + ",Phone", "x,y,z,1,1,KES,,,,,"):
            "twice.csv: the header row names the column phone twice. Nothing was applied.",
        tmp_path / "binary.csv": "binary.csv is not a CSV file (not UTF-8 text at byte 0): save it as CSV, UTF-8.",
        tmp_path / "folder.csv": "folder.csv is a folder, not a CSV file.",
        write(tmp_path / "quote.csv", HEADER, '"TEST2503000017,0712 345 678'): "quote.csv is not a CSV file (line 2: unexpected end of data)",
    }
    for path, words in cases.items():
        with pytest.raises(ImportRefused) as refused:
            read_csv(path)
        line = say.import_file_refused(refused.value.fault, path, refused.value.detail)
        assert words in line and "\n" not in line, line


def test_an_erm_that_does_not_answer_is_named_on_the_rows_it_leaves_unknown(tmp_path: Path, database_url: str) -> None:
    plans = write(tmp_path / "plans.csv", HEADER, "NEWDEVICE1,0712 000 001,Ann,300,40,KES,,,,",
                  "NEWDEVICE2,0712 000 002,Ben,300,40,KES,,,,")
    dead = {**env(database_url), "ERM_USERNAME": "test@example.com", "ERM_PASSWORD": "test1234",
            "ERM_BASE_URL": "http://127.0.0.1:9"}
    before = snapshot(database_url)
    result = run("plans", "import", str(plans), cwd=tmp_path, env=dead)
    assert result.code == 1
    assert result.out.splitlines() == ["line 2: the ERM did not answer, try again (NEWDEVICE1)",
                                       "line 3: the ERM did not answer, try again (NEWDEVICE2)"]
    assert result.err.strip().splitlines()[-1] == "paygbot: nothing applied: 2 of 2 rows have errors"
    assert snapshot(database_url) == before


def test_every_fault_has_its_sentence() -> None:
    for fault in Fault:
        line = say.import_error(RowError(7, fault, "VALUE", column="total", other_line=2, detail="DETAIL"))
        assert line.startswith("line 7: ") and "\n" not in line, line
    for file_fault in FileFault:
        assert "plans.csv" in say.import_file_refused(file_fault, "plans.csv", "DETAIL")


async def test_ended_plans_of_an_export_are_left_out(tmp_path: Path, database_url: str, db: Database) -> None:
    plans = write(
        tmp_path / "export.csv",
        "device,name,phone,agent,agent_name,currency,total,per_day,deposit,paid,left,status,credit_until",
        "TEST2503000017,Jane Wanjiru,+254712345678,,,KES,30000,100,0,5000,25000,active,",
        "SBX00000000001,John Otieno,+254722000001,,,KES,20000,50,0,20000,0,paid_off,",
        "SBX00000000002,Ann Njeri,+254722000002,,,KES,20000,50,0,700,19300,repossessed,",
    )
    done = run("plans", "import", str(plans), cwd=tmp_path, env=env(database_url))
    assert done.code == 0, done.err
    assert done.out.strip() == ("3 rows: 1 new plan, 0 unchanged, 1 new customer, 2 ended plans (paid off or "
                                "repossessed) left out — applied")
    async with db.read() as session:
        [plan] = (await session.exec(select(Plan))).all()
    assert (plan.total, plan.paid, plan.status) == (Decimal(30000), Decimal(5000), PlanStatus.ACTIVE)
