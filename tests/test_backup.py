"""``paygbot db backup``: a consistent copy of a ledger that is being written, and clear refusals."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from bot.clock import ManualClock
from storage import ledger
from storage.backup import BackupRefused, backup, ledger_file
from storage.db import Database
from storage.migrate import head_revision
from storage.models import Role

pytestmark = pytest.mark.sqlite_only  # a copy of a SQLite file; PostgreSQL: pg_dump (the refusal below)
from tests.support.cli import run

FILLER_ROWS, FILLER_BYTES = 3000, 8192  # ~24 MB: the copy takes long enough for writes to land meanwhile


def _pad(path: Path) -> None:
    """A filler table, so that the ledger is not copied in an instant."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE filler (n INTEGER PRIMARY KEY, blob BLOB NOT NULL)")
        connection.executemany("INSERT INTO filler VALUES (?, randomblob(?))",
                               [(n, FILLER_BYTES) for n in range(FILLER_ROWS)])
        connection.execute("CREATE TABLE pairs (n INTEGER NOT NULL, side TEXT NOT NULL)")
    connection.close()


def _write_pairs(path: Path, stop: threading.Event, done: list[int]) -> None:
    """Raw writes from a thread: each transaction adds two rows, (n, 'a') and (n, 'b')."""
    connection = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        n = 0
        while not stop.is_set():
            n += 1
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO pairs VALUES (?, 'a')", (n,))
            connection.execute("INSERT INTO pairs VALUES (?, 'b')", (n,))
            connection.execute("COMMIT")
            done.append(n)
            time.sleep(0.02)  # SQLite's busy wait is not fair: leave the bot's writer its turns
    finally:
        connection.close()


async def test_a_ledger_written_meanwhile_is_copied_as_one_consistent_moment(
    db: Database, database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    source = ledger_file(database_url)
    _pad(source)
    people = 0
    busy: list[int] = []  # writes that found the ledger busy past the timeout (seen once on a loaded CI machine)

    async def add_people() -> None:
        """The bot's own way of writing: one ledger transaction per person, ids 1, 2, 3, …"""
        nonlocal people
        while True:
            try:
                async with db.write() as session:
                    await ledger.put_person(session=session, telegram_id=people + 1, role=Role.AGENT,
                                            name=f"agent {people + 1}", now=clock.now())
            except OperationalError:  # the side writer kept the lock past the busy timeout: that one rolls back
                busy.append(people + 1)
            else:
                people += 1
            await asyncio.sleep(0)

    stop, pairs = threading.Event(), []
    thread = threading.Thread(target=_write_pairs, args=(source, stop, pairs))
    writer = asyncio.create_task(add_people())
    thread.start()

    async def until(enough: Callable[[], bool]) -> None:
        async with asyncio.timeout(30):
            while not enough():
                assert not writer.done() and thread.is_alive(), "a writer stopped"
                await asyncio.sleep(0.005)

    try:
        await until(lambda: people >= 20 and len(pairs) >= 20)
        people_before, pairs_before = people, len(pairs)
        made = await backup(database_url, tmp_path / "copy.db")
        people_during, pairs_during = people - people_before, len(pairs) - pairs_before
        await until(lambda: people >= people_before + people_during + 20)  # and writing goes on after
    finally:
        stop.set()
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await asyncio.to_thread(thread.join)

    assert people_during + pairs_during > 0, "nothing was written while the copy was made"
    assert len(busy) <= 1, f"the bot's writes kept finding the ledger busy: {len(busy)}"
    with sqlite3.connect(source) as live:
        assert live.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    live.close()

    copy = sqlite3.connect(made.target)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
        ids = [row[0] for row in copy.execute("SELECT telegram_id FROM person ORDER BY telegram_id")]
        assert ids == list(range(1, len(ids) + 1))  # a prefix: no gap, nothing half-written
        assert people_before <= len(ids) <= people_before + people_during
        sides = copy.execute("SELECT n, group_concat(side, '') FROM (SELECT * FROM pairs ORDER BY n, side) "
                             "GROUP BY n ORDER BY n").fetchall()
        assert [n for n, _ in sides] == list(range(1, len(sides) + 1))
        assert {both for _, both in sides} == {"ab"}  # each transaction whole or absent
        assert pairs_before <= len(sides) <= pairs_before + pairs_during
        assert copy.execute("SELECT count(*), sum(length(blob)) FROM filler").fetchone() == (
            FILLER_ROWS, FILLER_ROWS * FILLER_BYTES)
    finally:
        copy.close()
    assert made.revision == head_revision() and made.size == made.target.stat().st_size
    assert made.source == source.absolute()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == ["copy.db"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


async def test_the_copy_opens_as_a_ledger(database_url: str, tmp_path: Path, clock: ManualClock) -> None:
    """The copy is what `DATABASE_URL=sqlite:///copy.db paygbot run` would start from."""
    live = Database(database_url)
    async with live.write() as session:
        await ledger.put_person(session=session, telegram_id=42, role=Role.MANAGER, name="Mary", now=clock.now())
    made = await backup(database_url, tmp_path / "copy.db")
    await live.dispose()
    restored = Database(f"sqlite:///{made.target}")
    try:
        async with restored.read() as session:
            [person] = await ledger.list_people(session=session)
        assert (person.telegram_id, person.name) == (42, "Mary")
    finally:
        await restored.dispose()


async def test_force_replaces_the_file_whole(database_url: str, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    target.write_text("an older backup")
    with pytest.raises(BackupRefused) as refused:
        await backup(database_url, target)
    assert refused.value.reason == "target_exists" and target.read_text() == "an older backup"
    made = await backup(database_url, target, force=True)
    assert made.target == target and target.read_bytes().startswith(b"SQLite format 3\x00")


async def test_a_failed_copy_leaves_nothing_behind(database_url: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackupRefused) as refused:
        await backup(f"sqlite:///{broken}", tmp_path / "copy.db")
    assert refused.value.reason == "failed" and "not a database" in refused.value.detail
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.db", "ledger.db"]


# -- through the command line ---------------------------------------------------------------------


def _one_line_failure(result_err: str) -> str:
    lines = result_err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("paygbot: "), result_err
    assert "Traceback" not in result_err
    return lines[0]


def test_backup_command_prints_what_it_copied(database_url: str, tmp_path: Path) -> None:
    target = tmp_path / "backups" / "paygbot-2026-11-22.db"
    target.parent.mkdir()
    result = run("db", "backup", str(target), cwd=tmp_path, env={"DATABASE_URL": database_url})
    assert result.code == 0, result.err
    assert result.out.strip() == (f"Copied the ledger {ledger_file(database_url)} to {target}: "
                                  f"{target.stat().st_size / 1024:.1f} KB, schema revision {head_revision()}.")
    assert result.err == ""


def test_backup_refuses_to_overwrite_without_force(database_url: str, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    target.write_text("keep me")
    result = run("db", "backup", str(target), cwd=tmp_path, env={"DATABASE_URL": database_url})
    assert result.code == 1 and result.out == ""
    assert _one_line_failure(result.err) == (
        f"paygbot: {target} already exists: choose another file, or add --force to replace it.")
    assert target.read_text() == "keep me"
    forced = run("db", "backup", "--force", str(target), cwd=tmp_path, env={"DATABASE_URL": database_url})
    assert forced.code == 0 and "schema revision" in forced.out
    assert target.read_bytes().startswith(b"SQLite format 3\x00")


def test_backup_refuses_a_missing_folder(database_url: str, tmp_path: Path) -> None:
    result = run("db", "backup", str(tmp_path / "nowhere" / "copy.db"), cwd=tmp_path,
                 env={"DATABASE_URL": database_url})
    assert result.code == 1
    assert _one_line_failure(result.err) == (
        f"paygbot: the folder {tmp_path / 'nowhere'} does not exist: create it first, or choose another file.")
    assert not (tmp_path / "nowhere").exists()


def test_backup_refuses_a_database_that_is_not_sqlite(tmp_path: Path) -> None:
    result = run("db", "backup", "copy.db", cwd=tmp_path,
                 env={"DATABASE_URL": "postgresql://paygbot:db-SECRET-pw@db.example.com/paygbot"})
    assert result.code == 1
    line = _one_line_failure(result.err)
    assert "SQLite" in line and "pg_dump" in line and "db-SECRET-pw" not in line
    assert not (tmp_path / "copy.db").exists()


def test_backup_refuses_a_missing_ledger_and_creates_none(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ledger.db"
    result = run("db", "backup", "copy.db", cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{missing}"})
    assert result.code == 1
    assert _one_line_failure(result.err) == f"paygbot: there is no ledger at {missing}: check DATABASE_URL."
    assert not missing.exists() and not (tmp_path / "copy.db").exists()


def test_backup_refuses_to_copy_the_ledger_onto_itself(database_url: str, tmp_path: Path) -> None:
    source = ledger_file(database_url)
    result = run("db", "backup", "--force", str(source), cwd=tmp_path, env={"DATABASE_URL": database_url})
    assert result.code == 1 and "is the ledger itself" in _one_line_failure(result.err)
    with sqlite3.connect(source) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    connection.close()


def test_backup_needs_a_file_argument(tmp_path: Path) -> None:
    result = run("db", "backup", cwd=tmp_path)
    assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert result.err.startswith("paygbot db backup: the following arguments are required: file (usage: ")
