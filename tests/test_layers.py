"""The shape of the code: the import contracts of pyproject.toml (``[tool.importlinter]``) hold.

An import against the grain (the ledger importing the bot, the running bot reaching a stand-in, the
engine importing Telegram, a circle) fails here, so it fails CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout
