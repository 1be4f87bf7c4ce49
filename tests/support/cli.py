"""Run the installed ``paygbot`` command as a person would, from tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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
