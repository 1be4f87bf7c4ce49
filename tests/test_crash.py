"""A real engine process killed with SIGKILL in mid-queue loses nothing, issues nothing twice, keeps pace.

The ERM sandbox runs as ``paygbot sandbox`` and the engine as ``tests/engine_worker.py``, each a
process of its own on the wall clock; the ledger is a SQLite file both the worker and the test
open. The worker is killed twice while codes are in flight:

- once just after the ERM committed a code whose answer it holds back (``late_next``): the
  code exists at the ERM and nowhere in the ledger, which says SENDING;
- once while a generation waits out the ERM's latency and will be refused (``fail_next``):
  the ledger says SENDING and the ERM never commits anything for it.

A restarted worker must settle both from the ERM's code history — take the committed code,
send the other again — and finish the queue.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import httpx
from sqlmodel import col, select

from bot.clock import SystemClock
from bot.erm.rest import RestErm
from bot.http import free_port
from bot.issuing import Accepted, IssuingEngine
from storage.db import Database
from storage.models import CodeKind, CodeRequest, Status
from tests.support.cli import COMMAND, environment
from tests.support.settings import make_settings

WORKER = Path(__file__).with_name("engine_worker.py")
USER, PASSWORD = "test@example.com", "test1234"

DEVICES = 8
PER_DEVICE = 4
DAYS = 7  # the same for every request: the settlement must tell codes apart by the ledger, not by days
MIN_GAP = 1.0
LATENCY = 0.3
HELD = 3.0
"""Seconds the sandbox holds back a committed code's answer, and its latency while a refusal is
pending: the window the kill has to land in (the test notices the start within milliseconds on an idle
machine, but took more than half a second once on a loaded CI machine)."""
TIMEOUT = 5.0
"""ERM_TIMEOUT_SECONDS: longer than every answer above, so only the kill cuts them short."""
DEADLINE = 60.0
"""Seconds any one wait may take before the test fails (it needs about 20 s in all)."""


class Process:
    """A child process whose output goes to a log file, shown when an assertion fails."""

    def __init__(self, name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.name, self.argv, self.cwd, self.env = name, argv, cwd, env
        self.log = cwd / f"{name}.log"
        self._process: asyncio.subprocess.Process | None = None
        self._output: IO[bytes] | None = None

    async def start(self) -> None:
        assert self._process is None, f"{self.name} is already running"
        self._output = self.log.open("ab")
        self._process = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.cwd, env=environment(self.cwd, **self.env),
            stdin=asyncio.subprocess.DEVNULL, stdout=self._output, stderr=asyncio.subprocess.STDOUT,
        )

    @property
    def exited(self) -> bool:
        return self._process is not None and self._process.returncode is not None

    @property
    def started(self) -> bool:
        return self._process is not None

    async def stop(self, signum: signal.Signals = signal.SIGTERM) -> int:
        """Send ``signum`` and wait for the process to end; returns its exit status."""
        assert self._process is not None and self._output is not None
        if self._process.returncode is None:
            self._process.send_signal(signum)
        code = await asyncio.wait_for(self._process.wait(), DEADLINE)
        self._output.close()
        self._process = self._output = None
        return code

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} log ---\n" + "\n".join(text.splitlines()[-lines:])


async def until(what: str, check: Callable[[], Awaitable[Any]], *logs: Process, interval: float = 0.01) -> Any:
    """Poll ``check`` until it returns something true, and return it; fail after ``DEADLINE``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        result = await check()
        if result:
            return result
        for process in logs:
            assert not process.exited, f"{process.name} exited while waiting for {what}\n{process.tail()}"
        if loop.time() > deadline:
            raise AssertionError(f"no {what} within {DEADLINE} s\n" + "\n".join(p.tail() for p in logs))
        await asyncio.sleep(interval)


@asynccontextmanager
async def sandbox_process(cwd: Path) -> AsyncIterator[tuple[str, Process]]:
    """``paygbot sandbox`` with a short gap and some latency, on a free port."""
    port = free_port()
    sandbox = Process("sandbox", [
        *COMMAND, "sandbox", "--port", str(port), "--devices", str(DEVICES), "--latency", str(LATENCY),
        "--min-gap", str(MIN_GAP),
    ], cwd, {})
    await sandbox.start()
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as probe:

            async def up() -> bool:
                try:
                    return (await probe.get("/_sandbox/state")).status_code == 200
                except httpx.TransportError:
                    return False

            await until("sandbox answering", up, sandbox)
        yield url, sandbox
    finally:
        await sandbox.stop()


@asynccontextmanager
async def worker_process(cwd: Path, env: dict[str, str]) -> AsyncIterator[Process]:
    """``tests/engine_worker.py``, started and killed by the test; never left running."""
    worker = Process("worker", [sys.executable, str(WORKER)], cwd, env)
    try:
        yield worker
    finally:
        if worker.started:
            await worker.stop(signal.SIGKILL)


class _QueueOnly(IssuingEngine):
    """Validates and queues like the bot; the worker process, not this one, pumps."""

    def kick(self) -> None:
        return None


async def requests_by_status(db: Database) -> dict[Status, list[CodeRequest]]:
    async with db.read() as session:
        rows = (await session.exec(select(CodeRequest).order_by(col(CodeRequest.id)))).all()
    grouped: dict[Status, list[CodeRequest]] = defaultdict(list)
    for row in rows:
        grouped[row.status].append(row)
    return grouped


async def test_a_killed_worker_loses_nothing_and_issues_nothing_twice(tmp_path: Path, database_url: str, db: Database) -> None:
    settings = make_settings(DATABASE_URL=database_url, PAYGBOT_MIN_GAP_SECONDS=MIN_GAP, ERM_TIMEOUT_SECONDS=TIMEOUT)
    async with (
        sandbox_process(tmp_path) as (url, sandbox),
        httpx.AsyncClient(base_url=url) as control,
        RestErm(url, USER, PASSWORD, timeout=TIMEOUT) as erm,
        worker_process(tmp_path, {
            "DATABASE_URL": database_url, "ERM_BASE_URL": url, "ERM_USERNAME": USER, "ERM_PASSWORD": PASSWORD,
            "ERM_TIMEOUT_SECONDS": str(TIMEOUT), "PAYGBOT_MIN_GAP_SECONDS": str(MIN_GAP),
        }) as worker,
    ):

        async def state() -> dict[str, Any]:
            response = await control.get("/_sandbox/state")
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

        async def fault(**body: Any) -> None:
            (await control.post("/_sandbox/faults", json=body)).raise_for_status()

        async def issued_at_least(count: int) -> bool:
            return len((await requests_by_status(db))[Status.ISSUED]) >= count

        async def kill_when(what: str, armed: Callable[[dict[str, Any]], bool]) -> set[int]:
            """SIGKILL the worker the moment the sandbox shows ``armed``; the ids then SENDING."""

            async def ready() -> bool:
                return armed(await state())

            await until(what, ready, worker, sandbox, interval=0.005)
            assert await worker.stop(signal.SIGKILL) == -signal.SIGKILL
            return {row.id for row in (await requests_by_status(db))[Status.SENDING] if row.id is not None}

        async def queue(devices: list[str]) -> None:
            """PER_DEVICE requests for each device, through the engine's own validation."""
            engine = _QueueOnly(db=db, erm=erm, settings=settings, clock=SystemClock())
            for _ in range(PER_DEVICE):
                for device in devices:
                    assert isinstance(await engine.request(device, CodeKind.DAYS, DAYS), Accepted)
            await engine.close()

        await worker.start()
        assert await _QueueOnly(db=db, erm=erm, settings=settings).sync_devices() >= DEVICES
        devices = [device["oemItemID"] for device in (await state())["devices"] if device["oemItemID"].startswith("SBX")]
        first, second = devices[: DEVICES // 2], devices[DEVICES // 2 :]
        await queue(first)

        # Kill 1: a code committed at the ERM, its answer held back, the worker dies waiting.
        await until("first round issued", lambda: issued_at_least(len(first)), worker, sandbox)
        await fault(fault="late_next", n=1, delay=HELD)
        in_flight = await kill_when("a held-back answer", lambda s: s["pendingLate"] == 0)
        assert in_flight, "nothing was SENDING when the worker was killed"

        # Kill 2, while the first devices wait to be settled: the second devices' first codes are
        # in the ERM's latency, one of them to be refused; the worker dies waiting.
        await queue(second)
        await fault(fault="latency", seconds=HELD)
        await fault(fault="fail_next", n=1, status=503, paths=["/otp/daysCode"])
        await worker.start()
        in_flight |= await kill_when("a doomed generation received", lambda s: s["pendingFailures"] == 0)
        await fault(fault="latency", seconds=LATENCY)
        await worker.start()
        total = DEVICES * PER_DEVICE

        async def all_issued() -> bool:
            grouped = await requests_by_status(db)
            assert not grouped[Status.FAILED] and not grouped[Status.REFUSED], grouped
            return len(grouped[Status.ISSUED]) == total

        await until("every request issued", all_issued, worker, sandbox)
        assert await worker.stop() == 0, worker.tail()

        ledger = (await requests_by_status(db))[Status.ISSUED]
        final = await state()
        history = {device: (await erm.code_history(device, 0, 100)).events[::-1] for device in devices}

    # Nothing lost: every request has its code.
    assert len(ledger) == total and all(row.code and row.code_hex for row in ledger)
    # Nothing twice: the ERM's committed codes of each device are exactly the ledger's.
    for device in devices:
        ours = Counter(row.code_hex for row in ledger if row.device_ref == device)
        theirs = Counter(event.code_hex_string.upper() for event in history[device])
        assert ours == theirs, (device, ours, theirs)
        assert sum(theirs.values()) == PER_DEVICE and max(theirs.values()) == 1
    # Pacing held: the ERM never refused a generation, and its own clock shows the gap.
    committed = sum(device["codeCount"] for device in final["devices"])
    assert committed == total
    assert final["generations"] == committed + 1, "a generation was refused (pacing or daily limit)"
    for device, events in history.items():
        gaps = [(later.created_at - earlier.created_at).total_seconds() for earlier, later in zip(events, events[1:], strict=False)]
        assert min(gaps) >= MIN_GAP, (device, gaps)
    # Both kinds of crash happened and were settled: recovered from the history, and sent again.
    killed = [row for row in ledger if row.id in in_flight]
    assert any(row.erm_code_number is not None for row in killed), "no committed code was recovered from the history"
    assert any(row.erm_code_number is None and row.attempts >= 2 for row in killed), "no uncommitted request was sent again"
