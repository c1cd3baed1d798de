"""/healthz under hostile GraphQL documents: `modelreg server` (embedded PostgreSQL) while several clients
send documents that would cost seconds of CPU or megabytes of reading if they were not bounded (60,000
aliases, a field repeated 2,000 times, fragment cycles, deep nesting, a 20 MB body).

Prints /healthz latency quiet and under that load. The last line is key=value pairs.
Usage: python bench/hostile_documents.py [--clients 4] [--samples 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from embedded import start_server, stop, until_ready  # noqa: E402
from support.hostile_documents import healthz_latencies_ms, send_hostile_documents  # noqa: E402


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def key_works(url: str, key: str) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(600):  # the admin key works once the identity projection has applied it
            async with http.post(url + "/graphql", json={"query": "{ viewer { id } }"}) as response:
                if response.status == 200 and "errors" not in await response.json():
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("the first admin key never worked")


async def main(clients: int, samples: int) -> None:
    with tempfile.TemporaryDirectory(prefix="modelreg-hostile-") as tmp:
        port = 18900 + os.getpid() % 100
        url = f"http://127.0.0.1:{port}"
        server, started = start_server(Path(tmp) / "data", port)
        try:
            await until_ready(url, server, started)
            key = (Path(tmp) / "data" / "admin-api-key").read_text().strip()
            await key_works(url, key)
            quiet = await healthz_latencies_ms(url, samples // 4)
            stopping = asyncio.Event()
            load = asyncio.create_task(send_hostile_documents(url, key, stopping, clients=clients))
            await asyncio.sleep(1.0)  # the load is running
            loaded = await healthz_latencies_ms(url, samples)
            stopping.set()
            sent = await load
        finally:
            stop(server)
    print(f"/healthz quiet: p50 {statistics.median(quiet):.1f} ms, p99 {p99(quiet):.1f} ms ({len(quiet)} samples)")
    print(f"/healthz under {clients} hostile clients: p50 {statistics.median(loaded):.1f} ms, p99 {p99(loaded):.1f} ms, "
          f"max {max(loaded):.1f} ms ({len(loaded)} samples, {sent} hostile requests sent)")
    print(f"hostile_clients={clients} hostile_requests={sent} healthz_p50_ms={statistics.median(loaded):.1f} "
          f"healthz_p99_ms_under_hostile_queries={p99(loaded):.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--samples", type=int, default=400)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.samples))
