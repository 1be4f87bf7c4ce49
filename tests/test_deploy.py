"""deploy/: the Dockerfile, compose.yaml, the systemd unit and env.example name only variables the
settings know, parse, and hold what a deployment relies on (Docker itself is not run here)."""

from __future__ import annotations

import asyncio
import configparser
import json
import re
import shlex
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.clock import ManualClock
from bot.config import Settings
from bot.http import free_port
from bot.standins.erm import ErmSandbox
from tests.support.chat import chatting

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
FILES = ["Dockerfile", "compose.yaml", "paygbot.service", "env.example"]

KNOWN = {alias for field in Settings.model_fields.values() for alias in getattr(field.validation_alias, "choices", [])}
OURS = re.compile(r"\b(?:TELEGRAM|ERM|DATABASE|PAYGBOT)_[A-Z0-9_]+\b")
# Variables of the platform rather than of paygbot, which the deployment files may set.
PLATFORM = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK",
            "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "WEBHOOK_HOST"}  # compose's replicas profile
CONTAINER_PORT = 8080


# -- reading the files ----------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    return instructions


def arguments(instruction: str) -> list[list[str]]:
    return [shlex.split(rest) if not rest.startswith("[") else json.loads(rest)
            for keyword, rest in dockerfile() if keyword == instruction]


def compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "paygbot.service").read_text())
    return parser


def unit_values(key: str) -> list[str]:
    """Every value of a key that systemd allows to repeat (configparser keeps only the last)."""
    return [line.split("=", 1)[1].strip() for line in (DEPLOY / "paygbot.service").read_text().splitlines()
            if line.split("=", 1)[0].strip() == key]


# -- the variables they name ----------------------------------------------------------------------


def _assigned(words: list[str]) -> set[str]:
    return {word.split("=", 1)[0] for word in words if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word)}


def _referenced(text: str) -> set[str]:
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))


def named_variables(name: str) -> set[str]:
    """The environment variables a deployment file sets or reads."""
    text = (DEPLOY / name).read_text()
    if name == "env.example":
        return {line.split("=", 1)[0].strip() for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")}
    if name == "Dockerfile":
        names = _referenced(text)
        for keyword, rest in dockerfile():
            if keyword in ("ENV", "ARG"):
                names |= _assigned(shlex.split(rest)) or {shlex.split(rest)[0].split("=")[0]}
        return names
    if name == "compose.yaml":
        names = _referenced(text)
        for service in compose()["services"].values():
            environment = service.get("environment") or {}
            names |= set(environment) if isinstance(environment, dict) else _assigned(environment)
        return names
    names = _referenced(text)
    for value in unit_values("Environment"):
        names |= _assigned(shlex.split(value))
    return names


@pytest.mark.parametrize("name", FILES)
def test_they_name_only_variables_the_settings_know(name: str) -> None:
    names = named_variables(name)
    assert names, f"{name} names no variable at all: the parsing here is broken"
    assert names - KNOWN - PLATFORM == set(), f"{name} names variables paygbot does not read"
    mentioned = set(OURS.findall((DEPLOY / name).read_text()))  # comments included: no stale names
    assert mentioned - KNOWN == set(), f"{name} mentions variables paygbot does not read"


def test_env_example_is_the_one_list_of_every_variable() -> None:
    assert named_variables("env.example") == KNOWN


# -- compose.yaml ---------------------------------------------------------------------------------


def test_compose_runs_the_bot_with_its_volume_env_file_and_healthcheck() -> None:
    document = compose()
    bot = document["services"]["bot"]
    assert (DEPLOY / bot["build"]["context"] / bot["build"]["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    assert bot["env_file"] in (".env", [".env"])
    assert bot["restart"] == "unless-stopped"
    [volume] = bot["volumes"]
    named, _, mount = volume.partition(":")
    assert named in document["volumes"] and mount == "/data"
    assert bot["environment"]["DATABASE_URL"].startswith("sqlite:////data/")
    assert str(bot["environment"]["PAYGBOT_HTTP_PORT"]) == str(CONTAINER_PORT)
    assert any(str(port).endswith(f":{CONTAINER_PORT}") for port in bot["ports"])
    check = bot["healthcheck"]
    assert check["test"][0] == "CMD" and "/healthz" in " ".join(check["test"])
    assert check["test"][1:] == docker_healthcheck()  # one probe, in both places
    assert {"interval", "timeout", "retries"} <= set(check)


def test_the_replicas_profile_is_postgresql_three_webhook_bots_and_a_tls_proxy() -> None:
    services = compose()["services"]
    assert "profiles" not in services["bot"]  # the single SQLite bot stays the default
    postgres, replica, proxy = services["postgres"], services["replica"], services["proxy"]
    assert postgres["profiles"] == replica["profiles"] == proxy["profiles"] == ["replicas"]
    assert postgres["image"].startswith("postgres:") and "pg_isready" in postgres["healthcheck"]["test"]
    assert replica["deploy"]["replicas"] == 3 and replica["env_file"] in (".env", [".env"])
    environment = replica["environment"]
    assert environment["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["TELEGRAM_WEBHOOK_URL"].startswith("https://") and environment["TELEGRAM_WEBHOOK_URL"].endswith(
        "/telegram")
    assert "TELEGRAM_WEBHOOK_SECRET" in named_variables("env.example")  # set in .env, required with the URL
    assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert replica["healthcheck"]["test"][1:] == docker_healthcheck()
    assert "443:443" in proxy["ports"] and any(v.startswith("./Caddyfile:") for v in proxy["volumes"])
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert "{$WEBHOOK_HOST}" in caddyfile and "dynamic a replica 8080" in caddyfile and "health_uri /healthz" in caddyfile


# -- paygbot.service ------------------------------------------------------------------------------

HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes",
    "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "",
}


def test_the_systemd_unit_parses_and_restarts_on_failure() -> None:
    parsed = unit()
    assert parsed.sections() == ["Unit", "Service", "Install"]
    service = parsed["Service"]
    assert service["Type"] == "simple"
    assert service["User"] not in ("", "root") and service.get("Group", service["User"]) != "root"
    assert service["EnvironmentFile"] == "/etc/paygbot/env"
    program, *args = service["ExecStart"].split()
    assert program.startswith("/") and Path(program).name == "paygbot" and args == ["run"]  # ends with `paygbot run`
    assert service["Restart"] == "on-failure" and service["RestartSec"]
    assert service["KillSignal"] == "SIGTERM" and service["TimeoutStopSec"]
    assert service["WorkingDirectory"] in service["ReadWritePaths"].split()
    assert parsed["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in parsed["Unit"]["After"]


def test_the_systemd_unit_is_hardened() -> None:
    service = unit()["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, key
    assert "@system-service" in unit_values("SystemCallFilter")


# -- Dockerfile -----------------------------------------------------------------------------------


def docker_healthcheck() -> list[str]:
    [check] = [rest for keyword, rest in dockerfile() if keyword == "HEALTHCHECK"]
    options, _, command = check.partition("CMD")
    assert all(option.startswith("--") for option in options.split()), options
    return list(json.loads(command.strip()))


def test_the_dockerfile_runs_paygbot_as_a_user_with_the_ledger_on_a_volume() -> None:
    instructions = dockerfile()
    keywords = [keyword for keyword, _ in instructions]
    bases = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base) for base in bases)
    final = len(keywords) - 1 - keywords[::-1].index("FROM")
    after = instructions[final:]
    users = [rest for keyword, rest in after if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert arguments("VOLUME") == [["/data"]]
    assert [f"{CONTAINER_PORT}"] in arguments("EXPOSE")
    assert arguments("CMD")[-1] == ["paygbot", "run"]
    environment = {word.split("=", 1)[0]: word.split("=", 1)[1] for words in arguments("ENV") for word in words}
    assert environment["DATABASE_URL"].startswith("sqlite:////data/")
    assert "/healthz" in " ".join(docker_healthcheck())


def test_the_dockerfile_copies_what_pip_needs_and_the_context_keeps_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {Path(word).name for words in arguments("COPY") if not words[0].startswith("--") for word in words[:-1]}
    assert packages | {"pyproject.toml", project["project"]["readme"]} <= copied
    for name in copied:
        assert (ROOT / name).exists(), name
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for name in copied:
        assert f"!{name}" in ignore or f"!{name}/" in ignore, f"{name} is left out of the build context"
    installs = [rest for keyword, rest in dockerfile() if keyword == "RUN" and "pip install" in rest]
    assert installs and all(re.search(r"pip install[^&]* \.(\s|$)", rest) for rest in installs)


# -- the probe itself ----------------------------------------------------------------------------


async def _probe(command: list[str], port: int) -> int:
    """Run the HEALTHCHECK's command here, pointed at ``port`` instead of the container's 8080."""
    assert command[0] == "python"
    argv = [sys.executable, *[part.replace(f":{CONTAINER_PORT}/", f":{port}/") for part in command[1:]]]
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(process.wait(), 30)


@pytest.fixture
async def healthy_bot(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                      clock: ManualClock) -> AsyncIterator[int]:
    port = free_port()
    async with chatting(erm_sandbox, erm_url, database_url, clock, PAYGBOT_HTTP_PORT=str(port)):
        yield port


async def test_the_healthcheck_passes_on_a_running_bot_and_fails_without_one(healthy_bot: int) -> None:
    command = docker_healthcheck()
    assert await _probe(command, healthy_bot) == 0
    assert await _probe(command, free_port()) != 0
