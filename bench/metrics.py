"""Metrics benchmark (issue 15): one training process logs 1,000,000 points (10 metrics x 100,000 steps) with
`run.log`, then the same points go through MLflow's `log_batch` to `mlflow server` on the same PostgreSQL.

Starts everything itself: an embedded PostgreSQL, `modelreg server` on it (Postgres event log; --kafka puts
the log on a local Kafka broker), and MLflow's tracking server with its backend store in a database of the
same PostgreSQL (bench-only dependency: pip install ".[bench]"). Each training loop runs in a process of
its own, as training code does.

Figures: the time inside each `run.log` call (p99 and the longest), points per second from the first `log`
until a history query shows every point, MLflow's points per second (its `log_batch` stores before it
answers), and the p99 of a 1,000-sample history of the 1M-point run over GraphQL. The last line is
key=value pairs.

Usage: python bench/metrics.py [--steps 100000] [--keys 10] [--mlflow-steps N] [--kafka]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infrastructure import cpu_seconds  # noqa: E402
from registry import (  # noqa: E402
    admin_key,
    create_database,
    free_port,
    modelreg_cli,
    p,
    postgres,
    say,
    start_mlflow,
    stop,
    stop_group,
    until_healthy,
    verdict,
)

from modelreg.services.infra.embedded_postgres import postmaster_pid  # noqa: E402

# The training loop: the values are computed outside the timed call, as a model computes its loss.
OURS = """
import json, sys, time
from array import array
import modelreg

url, steps, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = [f"metric_{k}" for k in range(keys)]
took = array("q")
clock = time.perf_counter_ns
# The machine's floor, measured first: the same loop timing a call that does nothing (scheduling, GC).
def nothing(values):
    pass
floor = array("q")
for step in range(steps):
    values = {name: (step + k) * 1e-3 for k, name in enumerate(names)}
    started = clock()
    nothing(values)
    floor.append(clock() - started)
run = modelreg.init(project="bench", entity="acme", url=url)
first_log = time.time()
for step in range(steps):
    values = {name: (step + k) * 1e-3 for k, name in enumerate(names)}
    started = clock()
    run.log(values)
    took.append(clock() - started)
logged = time.time()
run.finish()
ordered = sorted(took)
print(json.dumps({"run_id": run.id, "first_log": first_log, "logged": logged, "finished": time.time(),
                  "took_ns": ordered[int(len(took) * 0.99)], "max_ns": max(took),
                  "p50_ns": ordered[len(took) // 2], "p90_ns": ordered[int(len(took) * 0.9)],
                  "over_5ms": sum(1 for t in took if t > 5_000_000), "max_at": took.index(max(took)),
                  "floor_ns": sorted(floor)[int(len(floor) * 0.99)], "floor_max_ns": max(floor)}))
"""

MLFLOW = """
import json, sys, time, uuid
from mlflow import MlflowClient
from mlflow.entities import Metric

url, steps, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = [f"metric_{k}" for k in range(keys)]
client = MlflowClient(tracking_uri=url)
run = client.create_run(client.create_experiment(f"bench-{uuid.uuid4().hex[:8]}"))
first_log = time.time()
batch = []
for step in range(steps):
    at = int(time.time() * 1000)
    batch += [Metric(name, (step + k) * 1e-3, at, step) for k, name in enumerate(names)]
    if len(batch) >= 1000:  # MLflow's limit of metrics per log_batch
        client.log_batch(run.info.run_id, metrics=batch)
        batch = []
if batch:
    client.log_batch(run.info.run_id, metrics=batch)
print(json.dumps({"first_log": first_log, "stored": time.time()}))
"""

HISTORY = """query($r: String!) {
  run(entity: "acme", project: "bench", runId: $r) { history(samples: 1000) { key points steps values } } }"""


def training(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run a training loop in a process of its own; its figures, with the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=False, timeout=3600
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"training process failed:\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["cpu_s"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return figures


async def history(http: aiohttp.ClientSession, url: str, key: str, run_id: str) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    async with http.post(
        url + "/graphql",
        json={"query": HISTORY, "variables": {"r": run_id}},
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        body = await response.json()
    took = (time.perf_counter() - started) * 1000
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return took, body["data"]["run"]["history"]


async def main(args: argparse.Namespace) -> None:
    total = args.steps * args.keys
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelreg-bench-metrics-")))
        kafka = None
        if args.kafka:
            from modelreg.services.infra.local_kafka import LocalKafka

            say("starting Kafka (KRaft, one node) ...")
            kafka = stack.enter_context(LocalKafka(tmp / "kafka")).bootstrap_servers
        dsn = stack.enter_context(postgres(None, tmp))

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        data_dir = tmp / "modelreg-data"
        server_args = ["server", "--data-dir", str(data_dir), "--database-url", dsn, "--port", str(port)]
        if kafka:
            server_args += ["--kafka", kafka]
        say(f"starting modelreg server ({'Kafka' if kafka else 'PostgreSQL'} event log) ...")
        server = modelreg_cli(dsn, kafka, *server_args, log=tmp / "modelreg-server.log")
        stack.callback(stop, server)
        await until_healthy(url, server, "modelreg server")
        key = await admin_key(data_dir)
        env = {**os.environ, "MODELREG_API_KEY": key}
        ours_processes = [psutil.Process(server.pid), psutil.Process(postmaster_pid(tmp / "postgres"))]
        cpu_before = cpu_seconds(ours_processes)

        # 1. Ours: the training process, then a history query until it shows every point
        say(f"modelreg: one training process logs {args.keys} metrics x {args.steps:,} steps = {total:,} points ...")
        ours = await asyncio.to_thread(training, OURS, url, str(args.steps), str(args.keys), env=env)
        async with aiohttp.ClientSession() as http:
            while True:
                _, curves = await history(http, url, key, ours["run_id"])
                if sum(c["points"] for c in curves) >= total:
                    break
                await asyncio.sleep(0.01)
            queryable = time.time()
            points_per_s = total / (queryable - ours["first_log"])
            say(
                f"  logging loop {ours['logged'] - ours['first_log']:.2f} s, finish() returned after "
                f"{ours['finished'] - ours['first_log']:.2f} s, every point queryable after "
                f"{queryable - ours['first_log']:.2f} s: {points_per_s:,.0f} points/s"
            )
            log_p99_us, log_max_ms = ours["took_ns"] / 1000, ours["max_ns"] / 1e6
            say(
                f"  run.log call p50 {ours['p50_ns'] / 1000:.1f} us, p90 {ours['p90_ns'] / 1000:.1f} us, "
                f"p99 {log_p99_us:.1f} us, max {log_max_ms:.2f} ms; the same loop calling a function "
                f"that does nothing: p99 {ours['floor_ns'] / 1000:.1f} us, max {ours['floor_max_ns'] / 1e6:.2f} ms; "
                f"{ours['over_5ms']} calls over 5 ms, the longest was call {ours['max_at']:,}"
            )
            server_cpu_s = cpu_seconds(ours_processes) - cpu_before
            say(
                f"  CPU for the {total:,} points: training process {ours['cpu_s']:.1f} s, "
                f"modelreg server and PostgreSQL {server_cpu_s:.1f} s (queries until queryable included)"
            )

            # 2. A 1,000-sample history of the run, over GraphQL
            for _ in range(5):
                await history(http, url, key, ours["run_id"])
            took = []
            cpu_before = cpu_seconds(ours_processes)
            for _ in range(args.history_queries):
                ms, curves = await history(http, url, key, ours["run_id"])
                took.append(ms)
            assert all(len(c["steps"]) == 1000 for c in curves) and len(curves) == args.keys
            history_p99 = p(took, 99)
            history_cpu_ms = (cpu_seconds(ours_processes) - cpu_before) * 1000 / args.history_queries
            say(
                f"  history(samples: 1000) of the {total:,}-point run: "
                f"p50 {p(took, 50):.1f} ms, p99 {history_p99:.1f} ms, "
                f"{history_cpu_ms:.1f} ms of server and PostgreSQL CPU each"
            )

        # 3. MLflow: log_batch (1,000 metrics a call, its limit) to its server on the same PostgreSQL
        stop(server)  # its CPU goes to MLflow now, as MLflow's would have gone to ours
        mlflow_total = args.mlflow_steps * args.keys
        await create_database(dsn, "mlflow")
        say("starting MLflow tracking server (backend store: the same PostgreSQL) ...")
        mlflow_process, mlflow_url = start_mlflow(dsn, tmp)
        stack.callback(stop_group, mlflow_process)
        await until_healthy(mlflow_url, mlflow_process, "MLflow server", path="/health", timeout_s=900)
        say(f"MLflow: the same loop through log_batch, {mlflow_total:,} points ...")
        theirs = await asyncio.to_thread(training, MLFLOW, mlflow_url, str(args.mlflow_steps), str(args.keys))
        mlflow_points_per_s = mlflow_total / (theirs["stored"] - theirs["first_log"])
        say(
            f"  {theirs['stored'] - theirs['first_log']:.1f} s: {mlflow_points_per_s:,.0f} points/s "
            f"(training process CPU {theirs['cpu_s']:.1f} s)"
        )
        stop_group(mlflow_process)

    speedup = points_per_s / mlflow_points_per_s
    say(f"log call p99 {log_p99_us:.1f} us   target <= 50 us: {verdict(log_p99_us <= 50)}")
    say(f"log call max {log_max_ms:.2f} ms   target <= 5 ms: {verdict(log_max_ms <= 5)}")
    say(f"points/s first log -> queryable {points_per_s:,.0f}   target >= 100,000: {verdict(points_per_s >= 100_000)}")
    say(f"speedup vs MLflow log_batch {speedup:.1f}x   target >= 10: {verdict(speedup >= 10)}")
    say(
        f"history(samples: 1000) of 1M points p99 {history_p99:.1f} ms   "
        f"target <= 200 ms: {verdict(history_p99 <= 200)}"
    )
    print(
        f"log_call_p99_us={log_p99_us:.1f} log_call_max_ms={log_max_ms:.2f} points_per_s={points_per_s:.0f} "
        f"mlflow_points_per_s={mlflow_points_per_s:.0f} speedup_vs_mlflow_metrics={speedup:.1f} "
        f"history_1m_p99_ms={history_p99:.1f} noop_call_max_ms={ours['floor_max_ns'] / 1e6:.2f} "
        f"server_cpu_s_per_1m_points={server_cpu_s * 1e6 / total:.1f} "
        f"training_cpu_s_per_1m_points={ours['cpu_s'] * 1e6 / total:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--mlflow-steps", type=int, default=None, help="steps logged through MLflow (default: --steps)")
    parser.add_argument("--history-queries", type=int, default=100)
    parser.add_argument("--kafka", action="store_true", help="the event log on a local Kafka broker")
    arguments = parser.parse_args()
    arguments.mlflow_steps = arguments.mlflow_steps or arguments.steps
    asyncio.run(main(arguments))
