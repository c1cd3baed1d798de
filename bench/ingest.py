"""Ingest benchmark: raw Kafka rate, end-to-end rate, rebuild rate, read-your-writes command latency.

Starts what it needs (Kafka from its Maven jars and an embedded PostgreSQL) unless KAFKA_BOOTSTRAP_SERVERS /
DATABASE_URL are set. Prints each figure with the baseline it is compared with; the last line is key=value
pairs. Usage: python bench/ingest.py [--events N] [--commands N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import re
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' generated histories

from infrastructure import Infrastructure, cpu_seconds, infrastructure, modelreg_process  # noqa: E402
from support.history import registry_history  # noqa: E402

from modelreg.events.codec import encode  # noqa: E402
from modelreg.events.kafka_log import KafkaEventLog  # noqa: E402
from modelreg.projections.migrations import migrate  # noqa: E402
from modelreg.services.infra.database import create_pool  # noqa: E402
from modelreg.services.projections_catalog import PROJECTIONS, all_migrations  # noqa: E402
from modelreg.services.settings import Settings  # noqa: E402


def say(text: str) -> None:
    print(text, flush=True)


async def raw_rate(infra: Infrastructure, payloads: list[tuple[bytes, bytes]]) -> float:
    """The physical limit here: aiokafka producing (idempotent, acks=all) while a consumer reads it all back."""
    settings = await infra.fresh_settings()
    log = KafkaEventLog(settings.kafka_bootstrap_servers, settings.topic, settings.partitions, create_topic=True)
    await log.start()  # creates the topic the same way
    await log.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=infra.kafka, enable_idempotence=True, linger_ms=0, max_batch_size=1024 * 1024
    )
    consumer = AIOKafkaConsumer(
        settings.topic, bootstrap_servers=infra.kafka, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
    try:
        started = time.perf_counter()

        async def produce() -> None:
            for i in range(0, len(payloads), 1000):
                futures = [await producer.send(settings.topic, value=v, key=k) for k, v in payloads[i : i + 1000]]
                await asyncio.gather(*futures)

        async def consume() -> None:
            seen = 0
            while seen < len(payloads):
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                seen += sum(len(messages) for messages in batch.values())

        await asyncio.gather(produce(), consume())
        return len(payloads) / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


async def applied(pool: asyncpg.Pool, topic: str) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT projection, sum(next_offset) AS n FROM projection_positions WHERE topic = $1 GROUP BY projection", topic
    )
    return {r["projection"]: int(r["n"]) for r in rows}


async def wait_applied(pool: asyncpg.Pool, topic: str, total: int, label: str, timeout_s: float = 900) -> None:
    last, deadline = 0.0, time.monotonic() + timeout_s
    while True:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{label}: not every projection applied {total} events within {timeout_s:.0f}s: "
                f"{await applied(pool, topic)}"
            )
        done = await applied(pool, topic)
        if all(done.get(name, 0) >= total for name in PROJECTIONS):
            return
        if time.monotonic() - last > 2:
            last = time.monotonic()
            print(f"  {label}: {done} of {total}", file=sys.stderr, flush=True)
        await asyncio.sleep(0.02)


def _projector_processes(settings: Settings, *, split: bool = True) -> list:
    """`split`: the two projections that decode every event in processes of their own, the light ones together.
    Else one `modelreg projector` with every projection, as compose.yaml and deploy/k8s run it."""
    if not split:
        return [modelreg_process(settings, "projector")]
    heavy = ["audit", "registry"]
    light = [arg for name in PROJECTIONS if name not in heavy for arg in ("--projection", name)]
    return [
        *(modelreg_process(settings, "projector", "--projection", name) for name in heavy),
        modelreg_process(settings, "projector", *light),
    ]


def stop(process: object) -> None:
    process.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    process.wait(30)  # type: ignore[attr-defined]


async def end_to_end(infra: Infrastructure, events: list, *, split: bool) -> tuple[float, Settings]:
    """Append `events` while the projectors run; events/s until every projection applied the last."""
    settings = await infra.fresh_settings()
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    await migrate(pool, all_migrations())
    log = KafkaEventLog(settings.kafka_bootstrap_servers, settings.topic, settings.partitions, create_topic=True)
    await log.start()
    projectors = _projector_processes(settings, split=split)
    try:
        await asyncio.sleep(3)  # let the consumers join their groups before the clock starts
        watched = {"projectors": [psutil.Process(p.pid) for p in projectors]}
        watched |= {name: [process] for name, process in infra.local_processes().items()}
        cpu_before = {name: cpu_seconds(processes) for name, processes in watched.items()}
        appender = psutil.Process()  # this process; its children (projectors, broker, PostgreSQL) are counted apart
        own_before = sum(appender.cpu_times()[:2])
        started = time.perf_counter()
        for i in range(0, len(events), 1000):
            await log.append(events[i : i + 1000])
        await wait_applied(pool, settings.topic, len(events), "end to end")
        rate = len(events) / (time.perf_counter() - started)
        per_event = {
            name: (cpu_seconds(processes) - cpu_before[name]) * 1e6 / len(events) for name, processes in watched.items()
        }
        per_event["this process (appending)"] = (sum(appender.cpu_times()[:2]) - own_before) * 1e6 / len(events)
        say(
            f"  end to end, {'three projector processes' if split else 'one projector process'}: {rate:,.0f} events/s; "
            "CPU per event: "
            + ", ".join(f"{name} {us:.0f} us" for name, us in per_event.items())
            + f"; all together {sum(per_event.values()):.0f} us (two cores at 10,000 events/s give 200)"
        )
        return rate, settings
    finally:
        for p in projectors:
            stop(p)
        await log.close()
        await pool.close()


async def end_to_end_and_rebuild(
    infra: Infrastructure, events: list, *, each_alone: bool = True, deployed: bool = True
) -> tuple[float, dict[str, float]]:
    """The end-to-end rate as modelreg is deployed (one projector process), then the rebuilds on that log.
    The rates also hold "end to end, split": the projections in three processes (audit; registry; the rest),
    each decoding the events it needs on its own. Not `deployed`: only the split layout (bench/quick.py, whose
    baseline was recorded so)."""
    split_rate, settings = await end_to_end(infra, events, split=True)
    end_to_end_rate = split_rate
    if deployed:
        end_to_end_rate, settings = await end_to_end(infra, events, split=False)
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)

    # `modelreg rebuild NAME` rebuilds one projection: each alone, then all of them side by side (one
    # process each, as after a schema change of several read models). Each process reports its replay
    # time (from the reset to caught up; interpreter start-up excluded).
    rates = {"end to end, split": split_rate}  # and the rebuilds, by what they rebuild
    for name in PROJECTIONS if each_alone else ():
        (seconds,) = _rebuild(settings, [name])
        rates[name] = len(events) / seconds
    # Their CPU, to say where the side-by-side time goes: the rebuild processes (their helpers, waited for by
    # them, count as theirs), PostgreSQL and the broker, over the whole of the six commands.
    local = infra.local_processes()
    servers_before = {name: cpu_seconds([process]) for name, process in local.items()}
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    all_seconds = _rebuild(settings, list(PROJECTIONS))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = {
        "rebuild processes": children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime
    }
    used |= {name: cpu_seconds([process]) - servers_before[name] for name, process in local.items()}
    await wait_applied(pool, settings.topic, len(events), "rebuild")
    rates["all, side by side"] = len(events) / max(all_seconds)
    say(
        f"  six side by side: slowest replay {max(all_seconds):.2f} s; CPU of the six commands, start-up included: "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in used.items())
    )
    # `modelreg rebuild NAME NAME...`: every projection in one command, reading the log once.
    try:
        (one_command,) = _rebuild(settings, [" ".join(PROJECTIONS)])
        await wait_applied(pool, settings.topic, len(events), "rebuild")
        rates["all, one command"] = len(events) / one_command
    except RuntimeError as exc:  # a build from before `rebuild` took several names
        say(f"rebuild of every projection in one command: not available ({str(exc)[-200:]!r})")
        rates["all, one command"] = 0.0
    await pool.close()
    return end_to_end_rate, rates


def _rebuild(settings: Settings, names: list[str]) -> list[float]:
    """One `modelreg rebuild` per entry of `names` (an entry may name several, space-separated), side by side."""
    processes = [modelreg_process(settings, "rebuild", *name.split(), capture=True) for name in names]
    return [_replay_seconds(p.communicate()[0].decode()) for p in processes]


def _replay_seconds(output: str) -> float:
    match = re.search(r"rebuilt \S+ in ([0-9.]+)s", output)
    if match is None:
        raise RuntimeError(f"modelreg rebuild did not finish: {output[-2000:]}")
    return float(match.group(1))


WARM_UP_COMMANDS = 1000
SET_ALIAS = """mutation($id: ID!) { addAlias(input: {registeredModel: "bench-model", artifactVersionId: $id,
  alias: "production"}) { version } }"""
LOG = """mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id } }"""
LINK = """mutation($id: ID!) { linkArtifactVersion(input: {registeredModel: "bench-model", artifactVersionId: $id}) {
  version } }"""


async def command_latency(
    infra: Infrastructure, commands: int, warm_up: int = WARM_UP_COMMANDS, *, split: bool = False
) -> list[float]:
    settings = await infra.fresh_settings()
    port = 18000 + (int(time.time()) % 1000)
    processes = _projector_processes(settings, split=split)
    key_folder = Path(tempfile.mkdtemp(prefix="modelreg-bench-"))
    key_file = key_folder / "admin-api-key"
    processes.append(modelreg_process(settings, "api", "--port", str(port), "--admin-key-file", str(key_file)))
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        async with aiohttp.ClientSession() as http:

            async def gql(query: str, variables: dict) -> dict:
                headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
                async with http.post(url, json={"query": query, "variables": variables}, headers=headers) as response:
                    body = await response.json()
                    if "errors" in body:
                        raise RuntimeError(body["errors"])
                    return body["data"]

            for _ in range(200):
                try:
                    async with http.get(url.replace("/graphql", "/healthz")) as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            while True:  # the first admin key works once the identity projection has it
                try:
                    await gql("{ viewer { id } }", {})
                    break
                except (RuntimeError, FileNotFoundError, aiohttp.ContentTypeError):
                    await asyncio.sleep(0.1)
            ids = []
            for n in range(2):
                content = f"model {n}".encode()
                digest = "sha256:" + hashlib.sha256(content).hexdigest()
                headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
                async with http.put(
                    url.replace("/graphql", f"/blobs/{digest}"), data=content, headers=headers
                ) as stored:
                    stored.raise_for_status()  # a manifest names stored blobs only
                files = [{"path": "model.bin", "size": len(content), "digest": digest}]
                data = await gql(
                    LOG, {"i": {"entity": "acme", "project": "bench", "name": "m", "type": "model", "files": files}}
                )
                ids.append(data["logArtifactVersion"]["id"])
                await gql(LINK, {"id": ids[-1]})
            for i in range(warm_up):  # servers run for days: measure them warm (JIT, caches, pools)
                await gql(SET_ALIAS, {"id": ids[i % 2]})
            latencies = []
            for i in range(commands):
                started = time.perf_counter()
                await gql(SET_ALIAS, {"id": ids[i % 2]})  # each one a real move of `production`
                latencies.append((time.perf_counter() - started) * 1000)
            return latencies
    finally:
        for p in processes:
            stop(p)
        shutil.rmtree(key_folder, ignore_errors=True)  # an admin key, left in /tmp by every run


async def main(events_n: int, commands: int) -> None:
    events = registry_history(events_n, collections=200, models=20)
    payloads = [(e.stream.encode(), encode(e)) for e in events]
    say(f"events: {events_n} ({sum(len(v) for _, v in payloads) / events_n:.0f} bytes each on average), 6 partitions")
    with infrastructure() as infra:
        raw = await raw_rate(infra, payloads)
        say(f"raw aiokafka produce->consume:      {raw:>10,.0f} events/s   (the physical limit on this machine)")
        e2e, rebuild_rates = await end_to_end_and_rebuild(infra, events)
        split = rebuild_rates.pop("end to end, split")
        say(
            f"end to end (append -> projected):    {e2e:>10,.0f} events/s   "
            f"target >= 10,000 and >= 30% of raw ({e2e / raw:.0%}); one projector process, as deployed"
        )
        say(f"  the same, projections in three processes (audit; registry; the rest): {split:,.0f} events/s")
        for what, rate in rebuild_rates.items():
            say(f"rebuild from offset 0 ({what}): {rate:>10,.0f} events/s   target >= 20,000")
        rebuild_rate = min(rate for what, rate in rebuild_rates.items() if what in PROJECTIONS)
        rebuild_all = rebuild_rates["all, side by side"]
        rebuild_one_command = rebuild_rates["all, one command"]
        del events, payloads  # a client holding 100k objects would measure its own garbage collector
        gc.collect()
        latencies = await command_latency(infra, commands)
        p50 = statistics.median(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98]
        say(
            f"set-alias with read-your-writes:     p50 {p50:.1f} ms, p99 {p99:.1f} ms   target p50 <= 10, p99 <= 40 "
            f"(MLflow ~130 ms p50); {commands} commands after {WARM_UP_COMMANDS} to warm up"
        )
    say(
        f"raw_events_per_s={raw:.0f} end_to_end_events_per_s={e2e:.0f} ratio_to_raw={e2e / raw:.2f} "
        f"rebuild_events_per_s={rebuild_rate:.0f} rebuild_all_side_by_side_events_per_s={rebuild_all:.0f} "
        f"rebuild_all_one_command_events_per_s={rebuild_one_command:.0f} end_to_end_split_events_per_s={split:.0f} "
        f"command_p50_ms={p50:.1f} command_p99_ms={p99:.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--commands", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.commands))
