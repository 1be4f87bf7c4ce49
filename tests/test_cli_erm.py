"""``paygbot erm …`` and ``paygbot sandbox`` run as a person runs them: exit codes, one-line errors."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from bot.erm.graphql import GraphQLErm
from bot.erm.rest import RestErm
from bot.standins.erm import ErmSandbox
from tests.support.cli import arun, run, sandbox_command

KEYPAD = re.compile(r"^\*\d{3}( \d{3}){6}#$")


def creds(url: str, password: str = "test1234") -> dict[str, str]:
    return {"ERM_BASE_URL": url, "ERM_USERNAME": "test@example.com", "ERM_PASSWORD": password}


def test_without_credentials_it_uses_the_embedded_sandbox_and_says_so(tmp_path: Path) -> None:
    result = run("erm", "days", "TEST2503000017", "30", cwd=tmp_path)
    assert result.code == 0, result.err
    assert KEYPAD.match(result.out.strip())
    assert "using the embedded ERM sandbox" in result.err
    for action in ("free", "reset"):
        other = run("erm", action, "SELLER2503000042", cwd=tmp_path)
        assert other.code == 0 and KEYPAD.match(other.out.strip())
    login = run("erm", "login", cwd=tmp_path)
    assert login.code == 0 and "Logged in" in login.out and "DISTRIBUTOR" in login.out


def test_bad_arguments_get_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, words in [
        (("erm", "days", "TEST2503000017", "abc"), "'abc': days must be a whole number from 1 to 1095"),
        (("erm", "days", "TEST2503000017", "0"), "'0': days must be a whole number from 1 to 1095"),
        (("erm", "days", "TEST2503000017", "1096"), "from 1 to 1095"),
        (("erm", "days", "'; DROP TABLE device;--", "5"), "a device id is 1 to 64"),
        (("erm", "days", "TEST2503000017"), "required: days"),
        (("erm", "launch"), "invalid choice"),
    ]:
        result = run(*args, cwd=tmp_path)
        assert result.code == 2, args
        assert len(result.err.strip().splitlines()) == 1 and words in result.err, result.err
        assert "Traceback" not in result.err and result.out == ""


async def test_with_credentials_it_talks_to_the_erm_it_is_given(tmp_path: Path, erm_url: str, erm_sandbox: ErmSandbox) -> None:
    result = await arun("erm", "days", "64ba2e1eaa6c7f107d7a8918", "5", cwd=tmp_path, env=creds(erm_url))
    assert result.code == 0, result.err
    assert "sandbox" not in result.err
    committed = erm_sandbox.device("TEST2503000017").codes
    assert [record.keypad for record in committed] == [result.out.strip()]
    history = await arun("erm", "history", "TEST2503000017", cwd=tmp_path, env=creds(erm_url))
    assert history.code == 0 and result.out.strip() in history.out and "DAYSCODE" in history.out


async def test_failures_are_one_line_without_secrets(tmp_path: Path, erm_url: str, erm_sandbox: ErmSandbox) -> None:
    wrong = await arun("erm", "days", "TEST2503000017", "5", cwd=tmp_path, env=creds(erm_url, "hunter2-not-it"))
    assert wrong.code == 1
    assert wrong.err.strip().splitlines() == [
        "paygbot: ERM login failed: the ERM refused the username or password for test@example.com. "
        "Check ERM_USERNAME and ERM_PASSWORD."
    ]
    assert "hunter2" not in wrong.err + wrong.out
    unknown = await arun("erm", "days", "NOSUCHDEVICE", "5", cwd=tmp_path, env=creds(erm_url))
    assert unknown.code == 1 and unknown.err.strip() == "paygbot: the ERM refused: Product NOSUCHDEVICE not found"
    erm_sandbox.fail_next(1, status=500)
    broken = await arun("erm", "free", "TEST2503000017", cwd=tmp_path, env=creds(erm_url))
    assert broken.code == 1 and "Nothing was generated; try again later." in broken.err
    assert len(broken.err.strip().splitlines()) == 1
    assert erm_sandbox.device("TEST2503000017").codes == []


def test_unreachable_erm(tmp_path: Path) -> None:
    result = run("erm", "login", cwd=tmp_path, env=creds("http://127.0.0.1:9"))
    assert result.code == 1
    assert "could not be reached" in result.err and "Traceback" not in result.err


async def test_sandbox_command_serves_the_documented_api(tmp_path: Path) -> None:
    async with sandbox_command(tmp_path) as served:
        async with RestErm(served.url, "test@example.com", "test1234") as client:
            code = await client.days_code("TEST2503000017", 3)
            page = await client.code_history("SELLER2503000042")
        assert page.events[0].code_dec_string == code.code
        async with GraphQLErm(f"{served.url}/graphql", "test@example.com", "test1234") as graph:
            seen = await graph.code_history("TEST2503000017")  # one sandbox behind both interfaces
        assert [event.code_dec_string for event in seen.events] == [code.code]
    assert served.code == 0
    assert f"ERM sandbox on {served.url}" in served.err
    assert f"{served.url}/graphql (GraphQL)" in served.err


def test_the_sandbox_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("sandbox", "--host", "127.0.0.1", "--port", str(port), cwd=tmp_path)
    assert result.code != 0
    assert f"the sandbox cannot listen on 127.0.0.1:{port}" in result.err and "Traceback" not in result.err


# -- over GraphQL ----------------------------------------------------------------------------------


def graphql_creds(url: str, password: str = "test1234") -> dict[str, str]:
    return {**creds("http://127.0.0.1:9", password), "ERM_GRAPHQL_URL": f"{url}/graphql"}


async def test_every_action_over_graphql(tmp_path: Path, erm_url: str, erm_sandbox: ErmSandbox) -> None:
    env = graphql_creds(erm_url)  # the REST URL is a dead port: only GraphQL can answer
    login = await arun("erm", "--api", "graphql", "login", cwd=tmp_path, env=env)
    assert login.code == 0 and f"Logged in to {erm_url}/graphql as test@example.com" in login.out, login.err
    days = await arun("erm", "--api", "graphql", "days", "SELLER2503000042", "5", cwd=tmp_path, env=env)
    assert days.code == 0 and KEYPAD.match(days.out.strip()), days.err
    erm_sandbox.clock.advance(6)  # type: ignore[attr-defined]
    free = await arun("erm", "--api", "graphql", "free", "TEST2503000017", cwd=tmp_path, env=env)
    erm_sandbox.clock.advance(6)  # type: ignore[attr-defined]
    reset = await arun("erm", "--api", "graphql", "reset", "64ba2e1eaa6c7f107d7a8918", cwd=tmp_path, env=env)
    assert free.code == 0 and reset.code == 0, free.err + reset.err
    committed = [record.keypad for record in erm_sandbox.device("TEST2503000017").codes]
    assert committed == [days.out.strip(), free.out.strip(), reset.out.strip()]
    history = await arun("erm", "--api", "graphql", "history", "TEST2503000017", cwd=tmp_path, env=env)
    assert history.code == 0 and "Codes of TEST2503000017, newest first (1-3 of 3)" in history.out
    assert history.out.index("RESETCODE") < history.out.index("FREECODE") < history.out.index("DAYSCODE")
    items = await arun("erm", "--api", "graphql", "items", "--search", "sbx0000000001", cwd=tmp_path, env=env)
    assert items.code == 0, items.err
    assert sorted(line.split()[1] for line in items.out.splitlines()) == [f"SBX0000000001{n}" for n in range(10)]
    assert "10 items matching 'sbx0000000001'." in items.err
    assert {call.path for call in erm_sandbox.calls} == {"/graphql"}


async def test_erm_api_from_the_environment_and_the_embedded_sandbox(tmp_path: Path, erm_url: str,
                                                                   erm_sandbox: ErmSandbox) -> None:
    chosen = await arun("erm", "items", cwd=tmp_path, env={**graphql_creds(erm_url), "ERM_API": "graphql"})
    assert chosen.code == 0 and "50 items." in chosen.err and "TEST2503000017" in chosen.out
    assert {call.path for call in erm_sandbox.calls} == {"/graphql"}
    embedded = await arun("erm", "--api", "graphql", "days", "TEST2503000017", "3", cwd=tmp_path)
    assert embedded.code == 0 and KEYPAD.match(embedded.out.strip())
    assert "using the embedded ERM sandbox" in embedded.err


async def test_graphql_failures_are_one_line_without_secrets(tmp_path: Path, erm_url: str,
                                                             erm_sandbox: ErmSandbox) -> None:
    wrong = await arun("erm", "--api", "graphql", "days", "TEST2503000017", "5", cwd=tmp_path,
                       env=graphql_creds(erm_url, "hunter2-not-it"))
    assert wrong.code == 1 and len(wrong.err.strip().splitlines()) == 1
    assert "ERM login failed" in wrong.err and "Invalid email or password" in wrong.err
    assert "hunter2" not in wrong.err + wrong.out
    unknown = await arun("erm", "--api", "graphql", "free", "NOSUCHDEVICE", cwd=tmp_path, env=graphql_creds(erm_url))
    assert unknown.code == 1 and unknown.err.strip() == "paygbot: the ERM refused: Product NOSUCHDEVICE not found"
    assert erm_sandbox.generations == 1 and all(device.codes == [] for device in erm_sandbox.devices)


def test_a_wrong_interface_name_is_one_line(tmp_path: Path) -> None:
    flag = run("erm", "--api", "soap", "login", cwd=tmp_path)
    assert flag.code == 2 and "invalid choice: 'soap'" in flag.err and len(flag.err.strip().splitlines()) == 1
    variable = run("erm", "login", cwd=tmp_path, env={"ERM_API": "soap"})
    assert variable.code == 2 and variable.err.strip() == (
        "paygbot: bad configuration: ERM_API: must be 'rest' or 'graphql'")
