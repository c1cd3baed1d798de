"""GraphQL documents that ask the server for much work in few bytes, and a load that sends them while
/healthz is timed (the tests', bench/hostile_documents.py's and bench/chaos.py's)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp


def many_aliases(n: int) -> str:
    """One query of `n` aliased fields: 60,000 of them are about 1.1 MB."""
    return "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(n)) + " }"


def cyclic_fragments() -> str:
    return "{ viewer { ...A } } fragment A on Principal { ...B } fragment B on Principal { ...A }"


def repeated_field(n: int) -> str:
    """The same field `n` times: quadratic work for graphql-core's overlapping-fields rule."""
    return "{ viewer { " + "id " * n + "} }"


def hostile_bodies() -> list[bytes]:
    """What the load sends in turn: each asks for seconds of CPU, or megabytes of reading, if unbounded."""
    documents = [many_aliases(60_000), repeated_field(1_990), cyclic_fragments(), "{" * 5_000 + "}" * 5_000]
    bodies = [json.dumps({"query": d, "variables": {}}).encode() for d in documents]
    twenty_megabytes = b'{"query": "{ viewer { id } }", "variables": {"pad": "' + b"x" * 20_000_000 + b'"}}'
    return [*bodies, b"[" * 200_000, twenty_megabytes]


async def send_hostile_documents(
    url: str, key: str, stop: asyncio.Event, *, clients: int = 4, bodies: list[bytes] | None = None
) -> int:
    """`clients` connections each sending `bodies` (default hostile_bodies()) to `url` (the server's base URL)
    in turn until `stop` is set; returns how many were sent."""
    bodies, sent = bodies or hostile_bodies(), 0

    async def client(offset: int) -> None:
        nonlocal sent
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as http:
            n = offset
            while not stop.is_set():
                try:
                    async with http.post(f"{url}/graphql", data=bodies[n % len(bodies)]) as response:
                        await response.read()
                except aiohttp.ClientError:
                    pass  # a refused oversized body may close the connection before it is all sent
                sent, n = sent + 1, n + 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    return sent


async def healthz_latencies_ms(url: str, samples: int, *, every_s: float = 0.05) -> list[float]:
    """`samples` timings of GET /healthz (milliseconds, 200 answers only: a failure raises)."""
    latencies = []
    async with aiohttp.ClientSession() as http:
        for _ in range(samples):
            started = time.perf_counter()
            async with http.get(f"{url}/healthz") as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"/healthz answered {response.status}")
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(every_s)
    return latencies
