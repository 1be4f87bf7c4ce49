"""Run the installed ``paygbot`` command as a person would, from tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.http import free_port

_SCRIPT = Path(sys.executable).with_name("paygbot")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bot.cli"]
_OURS = ("TELEGRAM_", "ERM_", "OMNIMETIC_", "DATABASE_URL", "PAYGBOT_")


@dataclass
class Result:
    code: int
    out: str
    err: str


def environment(cwd: Path, **env: str) -> dict[str, str]:
    """The parent's environment without any of our variables, plus ``env``."""
    base = {key: value for key, value in os.environ.items() if not key.startswith(_OURS)}
    return {**base, **env}


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """Run ``paygbot args…`` to completion (no server of ours needs to answer meanwhile)."""
    done = subprocess.run(
        [*COMMAND, *args], cwd=cwd, env=environment(cwd, **(env or {})), capture_output=True, text=True, timeout=timeout
    )
    return Result(done.returncode, done.stdout, done.stderr)


async def arun(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """Run ``paygbot args…`` while this event loop keeps serving (an in-test sandbox, say)."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND, *args, cwd=cwd, env=environment(cwd, **(env or {})),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


@dataclass
class Served:
    """``paygbot sandbox`` as a process: its URL; once stopped, its exit code and what it wrote to stderr."""

    url: str
    code: int | None = None
    err: str = ""


@asynccontextmanager
async def sandbox_command(cwd: Path, timeout: float = 20) -> AsyncIterator[Served]:
    """``paygbot sandbox`` on a free port, answering, for the block; stopped with SIGTERM after it."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "sandbox", "--port", str(port), cwd=cwd, env=environment(cwd),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    served = Served(f"http://127.0.0.1:{port}")
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient() as probe:
            while True:
                try:
                    await probe.get(f"{served.url}/_sandbox/state")
                    break
                except httpx.ConnectError:
                    assert asyncio.get_running_loop().time() < deadline, "the sandbox did not start"
                    await asyncio.sleep(0.05)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout)
        served.code, served.err = process.returncode, err.decode()
