"""/healthz under hostile GraphQL documents: `modelreg server` (embedded PostgreSQL) while several clients
send documents that would cost seconds of CPU or megabytes of reading if they were not bounded (60,000
aliases, a field repeated 2,000 times, fragment cycles, deep nesting, a 20 MB body).

Prints /healthz latency quiet and under that load. The last line is key=value pairs.
Usage: python bench/hostile_documents.py [--clients 4] [--samples 400]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from embedded import start_server, stop, until_ready  # noqa: E402
from support.hostile_documents import healthz_latencies_ms, hostile_bodies, send_hostile_documents  # noqa: E402


def hostile_load(url: str, key: str, clients: int, only: list[int] | None, stopping: Any) -> int:
    bodies = [b for n, b in enumerate(hostile_bodies()) if only is None or n in only]

    async def until_stopped() -> int:
        stop_sending = asyncio.Event()
        sending = asyncio.create_task(send_hostile_documents(url, key, stop_sending, clients=clients, bodies=bodies))
        while not stopping.is_set():
            await asyncio.sleep(0.1)
        stop_sending.set()
        return await sending

    return asyncio.run(until_stopped())


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


async def main(clients: int, samples: int, only: list[int] | None) -> None:
    with tempfile.TemporaryDirectory(prefix="modelreg-hostile-") as tmp:
        port = 18900 + os.getpid() % 100
        url = f"http://127.0.0.1:{port}"
        server, started = start_server(Path(tmp) / "data", port)
        try:
            await until_ready(url, server, started)
            key_file = Path(tmp) / "data" / "admin-api-key"
            while not key_file.exists():  # written on the first start, once the log is up
                await asyncio.sleep(0.1)
            key = key_file.read_text().strip()
            await key_works(url, key)
            quiet = await healthz_latencies_ms(url, samples // 4)
            # The load runs in its own process: sharing this one's event loop would time the bench, not the server.
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                stopping = multiprocessing.get_context("spawn").Manager().Event()
                load = pool.apply_async(hostile_load, (url, key, clients, only, stopping))
                await asyncio.sleep(2.0)  # the load is running
                loaded = await healthz_latencies_ms(url, samples)
                stopping.set()
                sent = load.get(timeout=60)
        finally:
            stop(server)
    print(f"/healthz quiet: p50 {statistics.median(quiet):.1f} ms, p99 {p99(quiet):.1f} ms ({len(quiet)} samples)")
    print(
        f"/healthz under {clients} hostile clients: p50 {statistics.median(loaded):.1f} ms, p99 {p99(loaded):.1f} ms, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, "
        f"max {max(loaded):.1f} ms ({len(loaded)} samples, {sent} hostile requests sent)"
    )
    print(
        f"hostile_clients={clients} hostile_requests={sent} healthz_p50_ms={statistics.median(loaded):.1f} "
        f"healthz_p99_ms_under_hostile_queries={p99(loaded):.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--only", type=int, action="append", help="Send only these of hostile_bodies() (by index).")
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.samples, args.only))
