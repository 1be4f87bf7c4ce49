"""The ERM client's own cost per code request, against a plain httpx call on the same sandbox.

Runs ``paygbot sandbox`` in its own process (so the server's work is not on our event loop),
then generates one days code per device, alternating a bare ``httpx`` POST with
``RestErm.days_code`` (which adds id checks, typed parsing and the hash check).

    python bench/erm_client_overhead.py [--requests 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import sandbox_process  # noqa: E402
from bot.erm.rest import RestErm  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main(requests: int) -> None:
    async with sandbox_process(devices=requests) as (url, devices):
        async with RestErm(url, "test@example.com", "test1234") as client, httpx.AsyncClient(base_url=url) as plain:
            token = (await plain.post("/user/login", json={"username": "test@example.com", "password": "test1234"})).json()[
                "accessToken"
            ]
            await client.login()
            bare: list[float] = []
            ours: list[float] = []
            for index, device in enumerate(devices[:requests]):
                started = time.perf_counter()
                if index % 2:
                    await client.days_code(device, 5)
                    ours.append(time.perf_counter() - started)
                else:
                    response = await plain.post(
                        "/otp/daysCode/v2", json={"productId": device, "days": 5}, headers={"Authorization": token}
                    )
                    response.raise_for_status()
                    response.json()
                    bare.append(time.perf_counter() - started)
    ms = 1000
    print(f"requests: {len(bare)} plain httpx, {len(ours)} RestErm (one days code per device, sandbox in its own process)")
    print(f"plain httpx: p50 {percentile(bare, .5) * ms:.2f} ms  p95 {percentile(bare, .95) * ms:.2f} ms  "
          f"mean {statistics.mean(bare) * ms:.2f} ms")
    print(f"RestErm:   p50 {percentile(ours, .5) * ms:.2f} ms  p95 {percentile(ours, .95) * ms:.2f} ms  "
          f"mean {statistics.mean(ours) * ms:.2f} ms")
    print(f"overhead: {(statistics.mean(ours) - statistics.mean(bare)) * 1e6:.0f} us per request; "
          f"ratio RestErm / plain = {statistics.mean(ours) / statistics.mean(bare):.3f} (mean), "
          f"{percentile(ours, .5) / percentile(bare, .5):.3f} (p50)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    asyncio.run(main(parser.parse_args().requests))
