"""The ERM's two interfaces in tests: a client of either on the sandbox, and the sandbox paths of each
kind of request (a fault is injected by path: ``erm_sandbox.fail_next(paths=erm_paths.days)``)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.erm.backend import Api, ErmBackend
from bot.erm.connect import backend

USER, PASSWORD = "test@example.com", "test1234"
APIS: tuple[Api, ...] = ("rest", "graphql")


@dataclass(frozen=True)
class ErmPaths:
    """Path prefixes of each kind of ERM request, as the sandbox matches faults against them (a GraphQL
    request is ``/graphql/<its first field>``)."""

    login: list[str]
    days: list[str]
    free: list[str]
    reset: list[str]
    history: list[str]
    items: list[str]

    @property
    def generation(self) -> list[str]:
        return [*self.days, *self.free, *self.reset]


PATHS = {
    "rest": ErmPaths(login=["/user/login"], days=["/otp/daysCode"], free=["/code/code/freecodeotp"],
                     reset=["/code/code/resetcode"], history=["/oves/v2/codeHistoryList", "/oves/codeHistoryList"],
                     items=["/oves/assignedItems"]),
    "graphql": ErmPaths(login=["/graphql/signIn"], days=["/graphql/generateDaysCode"],
                        free=["/graphql/generateFreeCode"], reset=["/graphql/generateResetCode"],
                        history=["/graphql/getItemsForDownloadById"], items=["/graphql/getAllClientItems"]),
}


def client(api: Api, sandbox_url: str, *, timeout: float = 5, password: str = PASSWORD) -> ErmBackend:
    """A client of interface ``api`` on the sandbox served at ``sandbox_url`` (use it with ``async with``)."""
    return backend(api, sandbox_url, f"{sandbox_url}/graphql", USER, password, timeout)
