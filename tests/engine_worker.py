"""The issuing engine's pump loop as a process of its own, for tests that kill it (tests/test_crash.py).

It is configured as the bot is, from the environment (``DATABASE_URL``, ``ERM_BASE_URL``,
``ERM_USERNAME``, ``ERM_PASSWORD``, ``ERM_TIMEOUT_SECONDS``, ``PAYGBOT_MIN_GAP_SECONDS`` …), runs the
real :class:`bot.issuing.IssuingEngine` on the wall clock and pumps the ledger every ``TICK``
seconds until it is killed — SIGKILL is the point — or stopped with SIGTERM (then it lets the
work in hand finish and exits 0).

    python tests/engine_worker.py
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from bot.config import ConfigError, load_settings
from bot.erm.rest import RestErm
from bot.issuing import IssuingEngine
from storage.db import Database
from storage.migrate import upgrade

TICK = 0.1
"""Seconds between two pumps: the engine kicks itself on news, the tick catches due work."""


async def main() -> int:
    settings = load_settings()
    if settings.erm_username is None or settings.erm_password is None:
        print("engine_worker: set ERM_USERNAME and ERM_PASSWORD (it never uses the embedded sandbox)", file=sys.stderr)
        return 2
    await upgrade(settings.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    db = Database(settings.database_url)
    try:
        async with RestErm(
            settings.erm_base_url, settings.erm_username, settings.erm_password, timeout=settings.erm_timeout_seconds
        ) as erm:
            engine = IssuingEngine(db=db, erm=erm, settings=settings)
            logging.getLogger("paygbot.worker").info("pumping %s every %s s", settings.database_url, TICK)
            while not stop.is_set():
                await engine.pump()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK)
            await engine.close()
    finally:
        await db.dispose()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        sys.exit(asyncio.run(main()))
    except ConfigError as exc:
        print(f"engine_worker: {exc}", file=sys.stderr)
        sys.exit(2)
