"""Refusal details are columns: migration 0007 reads the prose older versions kept, once, and gives it back
on the way down."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from storage.migrate import alembic_config, upgrade

WHEN = "2026-11-22 09:00:00.000000"
ROWS = {
    1: "stacking: 95 days fit",
    2: "daily_limit: next at 2026-11-22 21:00:00+00:00",
    3: "stacking: 0 days fit",
    4: "Product is not assigned to you",  # the ERM's own words
    5: "stacking: some days fit",  # not as the engine wrote it: left alone
    6: "unsettled",
}


def _rows(url: str) -> dict[int, tuple[str | None, int | None, datetime | None]]:
    """Each request's (reason, refused_fits, refused_until) as stored (times naive UTC)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if "refused_fits" not in {row[1] for row in connection.execute(text("PRAGMA table_info(code_request)"))}:
                query = "SELECT id, reason, NULL, NULL FROM code_request"
            else:
                query = "SELECT id, reason, refused_fits, refused_until FROM code_request"
            return {row[0]: (row[1], row[2], row[3] and datetime.fromisoformat(str(row[3])))
                    for row in connection.execute(text(query))}
    finally:
        engine.dispose()


def _downgrade(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()


@pytest.mark.sqlite_only  # rows as an old SQLite ledger holds them
async def test_old_refusals_become_a_word_and_columns_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    await upgrade(url, "0006")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO device (id, erm_id, label, unlocked, prepaid_days, credit_money, "
                                "verified, created_at) VALUES (1, 'E1', 'E1', 0, 0, '0', 1, :when)"), {"when": WHEN})
        for request_id, reason in ROWS.items():
            connection.execute(text(
                "INSERT INTO code_request (id, device_id, device_ref, kind, source, status, reason, attempts, "
                "not_before, created_at, delivery_attempts) VALUES (:id, 1, 'E1', 'DAYS', 'CHAT', 'REFUSED', "
                ":reason, 0, :when, :when, 0)"), {"id": request_id, "reason": reason, "when": WHEN})
    engine.dispose()

    await upgrade(url)
    midnight = datetime(2026, 11, 22, 21, 0)  # the ledger keeps UTC without a zone
    assert _rows(url) == {
        1: ("stacking", 95, None),
        2: ("daily_limit", None, midnight),
        3: ("stacking", 0, None),
        4: ("Product is not assigned to you", None, None),
        5: ("stacking: some days fit", None, None),
        6: ("unsettled", None, None),
    }

    _downgrade(url, "0006")
    assert {request_id: row[0] for request_id, row in _rows(url).items()} == ROWS
