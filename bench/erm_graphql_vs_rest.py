"""The ERM client's time per days code over GraphQL against REST, on the same sandbox process, and a
device sync of many items over each.

Runs ``paygbot sandbox`` in its own process (so the server's work is not on our event loop), then
generates one days code per device, alternating ``RestErm.days_code`` and ``GraphQLErm.days_code``
on different devices (each device gets one code, so the 6 s pacing never applies). The round trip
includes the sandbox's own work (its GraphQL execution costs more than its REST route); the client's
CPU time (``time.process_time`` of this process, the sandbox being another) is the client's own cost. Then walks every
item of a sandbox holding ``--items`` devices with each client, as the bot's device sync does,
counting the requests the sandbox received.

    python bench/erm_graphql_vs_rest.py [--requests 1000] [--items 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, sandbox_process  # noqa: E402
from bot.erm.backend import ErmBackend  # noqa: E402
from bot.erm.graphql import GraphQLErm  # noqa: E402
from bot.erm.rest import RestErm  # noqa: E402

USER, PASSWORD = "test@example.com", "test1234"


async def codes(requests: int) -> None:
    async with sandbox_process(devices=requests) as (url, devices):
        async with RestErm(url, USER, PASSWORD) as rest, GraphQLErm(f"{url}/graphql", USER, PASSWORD) as graph:
            await rest.login()
            await graph.login()
            times: dict[str, list[float]] = {"REST": [], "GraphQL": []}
            cpu: dict[str, list[float]] = {"REST": [], "GraphQL": []}
            for index, device in enumerate(devices[:requests]):
                name, client = ("GraphQL", graph) if index % 2 else ("REST", rest)
                started, started_cpu = time.perf_counter(), time.process_time()
                await client.days_code(device, 5)
                times[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
    ms = 1000
    print(f"days codes: {len(times['REST'])} over REST, {len(times['GraphQL'])} over GraphQL, alternating, "
          "one per device, sandbox in its own process")
    for name, values in times.items():
        print(f"  {name:<8} round trip p50 {percentile(values, .5) * ms:6.2f} ms  p99 {percentile(values, .99) * ms:6.2f} ms"
              f"   client CPU p50 {percentile(cpu[name], .5) * ms:5.2f} ms  p99 {percentile(cpu[name], .99) * ms:5.2f} ms")
    for label, series in (("round trip", times), ("client CPU", cpu)):
        print(f"  ratio GraphQL / REST, {label}: p50 {percentile(series['GraphQL'], .5) / percentile(series['REST'], .5):.2f},"
              f" p99 {percentile(series['GraphQL'], .99) / percentile(series['REST'], .99):.2f}")


async def sync(items: int) -> None:
    async with sandbox_process(devices=items) as (url, _):
        for name, client in (("REST", RestErm(url, USER, PASSWORD)),
                             ("GraphQL", GraphQLErm(f"{url}/graphql", USER, PASSWORD))):
            async with client:
                await client.login()
                before = await _requests(url)
                started = time.perf_counter()
                seen = await _walk(client)
                took = time.perf_counter() - started
                made = await _requests(url) - before
            print(f"  {name:<8} {seen} items in {took:.2f} s, {made} requests (100 a page)")


async def _walk(client: ErmBackend) -> int:
    return sum([len(page) async for page in client.items(page_size=100)])


async def _requests(url: str) -> int:
    async with httpx.AsyncClient(base_url=url) as probe:
        return len((await probe.get("/_sandbox/state")).json()["calls"])


async def main(requests: int, items: int) -> None:
    await codes(requests)
    print(f"device sync of a sandbox holding {items} generated devices (+2 named ones):")
    await sync(items)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--items", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.items))
