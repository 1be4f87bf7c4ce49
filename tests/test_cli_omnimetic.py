"""``paygbot omnimetic …`` run as a person runs it: the embedded sandbox without keys, a given Omnimetic
with them; exit codes and one-line errors without secrets."""

from __future__ import annotations

from pathlib import Path

from bot.clock import ManualClock
from bot.standins.omnimetic import ACCOUNT_ID, EMPTY_ACCOUNT, JANE_ACCOUNT, OmnimeticSandbox, running
from tests.support.cli import arun, run


def test_without_keys_every_action_on_the_embedded_sandbox(tmp_path: Path) -> None:
    login = run("omnimetic", "login", cwd=tmp_path)
    assert login.code == 0, login.err
    assert "as client paygbot-sandbox" in login.out and f"(account {ACCOUNT_ID})" in login.out
    assert "using the embedded Omnimetic sandbox" in login.err
    info = run("omnimetic", "info", JANE_ACCOUNT, cwd=tmp_path)
    assert info.code == 0 and "names:   Jane Wanjiru" in info.out and "Nairobi" in info.out
    history = run("omnimetic", "history", JANE_ACCOUNT, "--year", "2025", cwd=tmp_path)
    rows = [line for line in history.out.splitlines() if line.startswith(("January", "December"))]
    assert history.code == 0 and len(rows) == 2 and all("total" in row and "amount" in row for row in rows)
    hours = run("omnimetic", "interval", JANE_ACCOUNT, "--from", "2026-01-01", "--to", "2026-01-02", cwd=tmp_path)
    assert hours.code == 0 and len([line for line in hours.out.splitlines() if line.startswith("2026-01-0")]) == 48
    sheet = tmp_path / "jane.xlsx"
    download = run("omnimetic", "download", JANE_ACCOUNT, str(sheet), cwd=tmp_path)
    assert download.code == 0 and sheet.read_bytes().startswith(b"PK") and str(sheet) in download.out
    again = run("omnimetic", "download", JANE_ACCOUNT, str(sheet), cwd=tmp_path)
    assert again.code == 1 and "exists; choose another file or add --force" in again.err
    empty = run("omnimetic", "history", EMPTY_ACCOUNT, cwd=tmp_path)
    assert empty.code == 0 and f"No figures for {EMPTY_ACCOUNT}" in empty.out


def test_bad_arguments_get_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, words in [
        (("omnimetic", "info", "<script>"), "a utility service account id is 1 to 64"),
        (("omnimetic", "history", JANE_ACCOUNT, "--year", "26"), "is not a year"),
        (("omnimetic", "interval", JANE_ACCOUNT, "--from", "2026-13-01", "--to", "2026-12-01"), "not a date"),
        (("omnimetic", "interval", JANE_ACCOUNT, "--from", "2026-01-01"), "required: --to"),
        (("omnimetic", "fetch"), "invalid choice"),
    ]:
        result = run(*args, cwd=tmp_path)
        assert result.code == 2, (args, result.err)
        assert len(result.err.strip().splitlines()) == 1 and words in result.err, result.err
    reversed_dates = run("omnimetic", "interval", JANE_ACCOUNT, "--from", "2026-02-01", "--to", "2026-01-01",
                         cwd=tmp_path)
    assert reversed_dates.code == 1 and reversed_dates.err.strip() == "paygbot: --from is after --to"


async def test_with_keys_it_talks_to_the_omnimetic_it_is_given(tmp_path: Path, clock: ManualClock) -> None:
    sandbox = OmnimeticSandbox(clock=clock)
    sandbox.add_client("client-9", "omni-Secret-77")
    async with running(sandbox) as url:
        env = {"OMNIMETIC_BASE_URL": url, "OMNIMETIC_CLIENT_ID": "client-9", "OMNIMETIC_SECRET": "omni-Secret-77"}
        info = await arun("omnimetic", "info", JANE_ACCOUNT, cwd=tmp_path, env=env)
        assert info.code == 0 and "sandbox" not in info.err and "Jane Wanjiru" in info.out
        unknown = await arun("omnimetic", "info", "0123456789abcdef01234567", cwd=tmp_path, env=env)
        assert unknown.code == 1 and unknown.err.startswith("paygbot: Omnimetic has no such account")
        wrong = await arun("omnimetic", "login", cwd=tmp_path, env={**env, "OMNIMETIC_SECRET": "guess-Secret-1"})
        assert wrong.code == 1 and len(wrong.err.strip().splitlines()) == 1
        assert "Omnimetic login failed" in wrong.err and "guess-Secret-1" not in wrong.err + wrong.out
        sandbox.fail_next(10, status=500)
        down = await arun("omnimetic", "history", JANE_ACCOUNT, cwd=tmp_path, env=env)
        assert down.code == 1 and "Try again later." in down.err and "Traceback" not in down.err
    assert [call.path for call in sandbox.calls].count("/access-token") >= 3


def test_unreachable_omnimetic(tmp_path: Path) -> None:
    result = run("omnimetic", "login", cwd=tmp_path, env={"OMNIMETIC_BASE_URL": "http://127.0.0.1:9",
                                                           "OMNIMETIC_CLIENT_ID": "c", "OMNIMETIC_SECRET": "s3cret-x"})
    assert result.code == 1 and "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert "s3cret-x" not in result.err
