"""Instructions per ``/days``: what the CPU figures of ``chat_days_latency.py`` measure, counted, not timed.

This machine's speed changes by 30-50% from one hour to the next, so a CPU time or a latency measured now
cannot be compared with one measured an hour ago, and two versions of the bot can be compared only run by run,
interleaved, over many runs. The number of machine instructions the process executes does not change with the
hour: this runs ``chat_days_latency.py``'s one-process set-up (the bot, the Bot API stand-in and the ERM sandbox
on one event loop) under valgrind's callgrind, counting only while the measured updates are sent (the start,
the device sync and the warm-up are not counted), and prints the instructions per ``/days``: the bot's with the
stand-ins' share, as the CPU line of ``chat_days_latency.py``. Two runs of one version agree within ~1%.

The issuing pump's periodic tick is off: under valgrind every update lasts ~40 times as long, and would count
~40 times the ticks; the kicks that a ``/days`` sets off still run everything it needs. Needs Debian's
``valgrind``; takes about three minutes (valgrind runs Python ~40 times slower).

    python bench/chat_days_instructions.py [--requests 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

INNER = "--counted-inside-valgrind"


def callgrind(switch: str) -> None:
    """Counting on or off in this process (it runs under callgrind)."""
    subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], check=True, capture_output=True)


def inside(count: int) -> None:
    """Under valgrind: the benchmark's run, counting only the measured updates."""
    import bot.jobs
    from bench import chat_days_latency as bench

    bot.jobs.schedule_pump.__defaults__ = (3600.0,)  # the periodic tick off (see above)
    days = bench.StandIns.days

    async def counted(self: Any, first: int, last: int, gap: float) -> Any:
        if first == 0:  # the warm-up
            return await days(self, first, last, gap)
        callgrind("on")
        try:
            return await days(self, first, last, gap)
        finally:
            callgrind("off")

    bench.StandIns.days = counted  # type: ignore[method-assign]
    # (no wait for the start-up jobs: under valgrind the first update after that wait went unanswered for 15 s, the
    # cause not found; the measured updates are counted as before)
    samples = asyncio.run(bench.run(count, len(bench.AGENTS), 0.2, False, started=0.0))
    print(f"updates measured: {len(samples)}")


def main(count: int) -> None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, INNER, str(count)], capture_output=True, text=True, check=False)
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or collected is None or f"updates measured: {count}" not in done.stdout:
        raise SystemExit(f"the run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    print(f"/days <device> 1: {count} updates, bot and stand-ins in one process (chat_days_latency.py's set-up)")
    print(f"instructions per /days: {int(collected.group(1)) / count / 1e6:.2f} million")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == INNER:
        inside(int(sys.argv[2]))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--requests", type=int, default=30)
        main(parser.parse_args().requests)
