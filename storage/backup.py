"""``paygbot db backup <file>``: a consistent copy of a live SQLite ledger.

The copy is made with SQLite's online backup API (:meth:`sqlite3.Connection.backup`) in one step,
inside one read transaction: in WAL mode the bot keeps writing meanwhile and the copy is the ledger
as it was at one instant (every committed transaction up to then, none after). The copy is written
beside the target under a temporary name and moved into place only when complete, so a failed
backup never leaves half a file, and ``--force`` never destroys the previous backup before the new
one is whole. The work runs in a thread: the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from storage.db import BUSY_TIMEOUT_MS, async_url, is_sqlite

Reason = Literal["not_sqlite", "no_ledger", "same_file", "target_exists", "not_a_file", "no_folder", "failed"]


class BackupRefused(Exception):
    """No backup was made. ``reason`` says why, ``path`` is the file or folder concerned and
    ``detail`` the system's own words (for ``failed``); bot.texts turns them into a sentence."""

    def __init__(self, reason: Reason, path: Path | None = None, detail: str = "") -> None:
        super().__init__(reason, str(path) if path else "", detail)
        self.reason, self.path, self.detail = reason, path, detail


@dataclass(frozen=True)
class Backup:
    """What was copied: the ledger, the copy, its size in bytes and the copy's schema revision."""

    source: Path
    target: Path
    size: int
    revision: str | None


def ledger_file(url: str) -> Path:
    """The file of a SQLite ledger URL, or :class:`BackupRefused` for anything else."""
    if not is_sqlite(url):
        raise BackupRefused("not_sqlite")
    database = async_url(url).database
    if not database or database == ":memory:":
        raise BackupRefused("not_sqlite")
    return Path(database).expanduser()


def _checked(url: str, target: Path, force: bool) -> tuple[Path, Path]:
    source = ledger_file(url)
    if not source.is_file():
        raise BackupRefused("no_ledger", source)
    target = target.expanduser()
    if not target.parent.is_dir():
        raise BackupRefused("no_folder", target.parent)
    if target.exists() and target.resolve() == source.resolve():
        raise BackupRefused("same_file", target)
    if target.exists() and not target.is_file():
        raise BackupRefused("not_a_file", target)
    if target.exists() and not force:
        raise BackupRefused("target_exists", target)
    return source, target


async def backup(url: str, target: Path, *, force: bool = False) -> Backup:
    """Copy the SQLite ledger at ``url`` to ``target``; refuse (:class:`BackupRefused`) when the
    ledger is not SQLite or missing, the target's folder is missing, or the target exists and
    ``force`` is false."""
    source, target = _checked(url, target, force)
    return await asyncio.to_thread(_copy, source, target, force)


def _copy(source: Path, target: Path, force: bool) -> Backup:
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(handle)
    partial = Path(name)
    try:
        revision = _copy_into(source, partial)
        _move(partial, target, force)
    except sqlite3.Error as exc:
        raise BackupRefused("failed", target, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    except OSError as exc:
        raise BackupRefused("failed", target, exc.strerror or type(exc).__name__) from None
    finally:
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return Backup(source=source.absolute(), target=target.absolute(), size=target.stat().st_size, revision=revision)


def _copy_into(source: Path, partial: Path) -> str | None:
    """One backup step over the whole ledger, then make the copy a single self-contained file."""
    reader = sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        copy = sqlite3.connect(partial)
        try:
            reader.backup(copy)  # pages=-1: every page in one step, one consistent snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # no -wal/-shm beside the copy
            try:
                row = copy.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError:  # a ledger never migrated
                row = None
            return str(row[0]) if row else None
        finally:
            copy.close()
    finally:
        reader.close()


def _move(partial: Path, target: Path, force: bool) -> None:
    """Put the finished copy in place: replacing only with ``force``, and never half-written."""
    if force:
        os.replace(partial, target)
        return
    try:
        os.link(partial, target)  # fails if the target appeared meanwhile: nothing is overwritten
    except FileExistsError:
        raise BackupRefused("target_exists", target) from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise BackupRefused("target_exists", target) from None
        os.replace(partial, target)
