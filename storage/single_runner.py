"""One ``paygbot run`` per SQLite ledger: the file is SQLite's, the engine's pacing and claims are one
process's, so a second bot on the same file would break the guarantees (several processes need PostgreSQL).

An exclusive ``flock`` on ``<ledger>.run.lock`` beside the ledger, held for the life of the process: the
kernel lets it go when the process ends however it ends (``kill -9`` included), so a crash never leaves a
stale lock to clear by hand."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.db import async_url, is_sqlite


class AlreadyRunning(Exception):
    """Another process holds the ledger."""

    def __init__(self, ledger: Path, pid: str) -> None:
        super().__init__(f"{ledger} is in use by process {pid or '?'}")
        self.ledger, self.pid = ledger, pid


def _ledger(url: str) -> Path | None:
    if not is_sqlite(url):
        return None
    database = async_url(url).database
    return None if not database or database == ":memory:" else Path(database).expanduser().absolute()


@contextmanager
def only_runner(url: str) -> Iterator[None]:
    """Hold the SQLite ledger of ``url`` for this process, or raise :class:`AlreadyRunning` (PostgreSQL: no
    hold, as several processes may share it)."""
    ledger = _ledger(url)
    if ledger is None:
        yield
        return
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with open(ledger.with_name(ledger.name + ".run.lock"), "a+", encoding="ascii") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise AlreadyRunning(ledger, handle.read().strip()) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
