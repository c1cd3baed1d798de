"""Automation benchmark: how fast an event becomes a queued job, a queued job a running process, and an
alias move a webhook delivery, on `modelreg server` (embedded Postgres, one process) and a real agent.

Times are the server's own event times (the triggering event, the job's enqueue and start) and the
receiver's clock for webhooks; all on this machine. The last line is key=value pairs.
Usage: python bench/automation.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from embedded import start_server, stop, until_ready  # noqa: E402
from ingest import say  # noqa: E402
from support.training_repo import make_training_repo  # noqa: E402

LOG = "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id createdAt } }"
LINK = (
    'mutation($id: ID!, $a: [String!]) { linkArtifactVersion(input: {registeredModel: "bench", artifactVersionId: $id, '
    "aliases: $a}) { version } }"
)
ALIAS = (
    'mutation($id: ID!) { addAlias(input: {registeredModel: "bench", artifactVersionId: $id, alias: "production"}) { '
    "version } }"
)
AUTOMATION = (
    "mutation($n: String!, $t: GenericScalar!, $a: GenericScalar!) { createAutomation(input: {name: $n, trigger: $t, "
    "action: $a}) { automation { id } } }"
)
# Priority: the measured jobs go before whatever the automation queued earlier in the run.
ENQUEUE = (
    'mutation($s: GenericScalar, $c: GenericScalar) { enqueueJob(input: {queue: "cpu", entity: "acme", project: '
    '"bench", source: $s, config: $c, priority: 10}) { id } }'
)
JOB = "query($id: ID!) { launchJob(id: $id) { state enqueuedAt startedAt } }"
JOBS = "{ launchJobs(first: 500) { items { triggeredBy enqueuedAt } } }"
AUDIT = '{ auditLog(action: "registry.alias_added", first: 500) { items { eventId occurredAt } } }'


def at(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1] if len(values) > 1 else values[0]


class Gql:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.http.post(
            self.url + "/graphql", json={"query": query, "variables": variables or {}}
        ) as response:
            body = await response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    async def upload(self, content: bytes) -> dict[str, Any]:
        """A manifest entry for `content`, stored first (a manifest names stored blobs only)."""
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        async with self.http.put(f"{self.url}/blobs/{digest}", data=content) as response:
            response.raise_for_status()
        return {"path": "d.csv", "size": len(content), "digest": digest}


async def version_input(gql: Gql, n: int, name: str) -> dict[str, Any]:
    files = [await gql.upload(f"{name}-{n}".encode())]
    return {"entity": "acme", "project": "bench", "name": name, "type": "dataset", "files": files}


async def trigger_to_enqueue(gql: Gql, source: dict[str, Any], events: int) -> list[float]:
    trigger = {"event": "artifact_version_logged", "collection": "bench-data"}
    action = {
        "kind": "launch",
        "queue": "cpu",
        "entity": "acme",
        "project": "bench",
        "source": source,
        "config": {"data": "${artifact_ref}"},
    }
    await gql(AUTOMATION, {"n": "retrain", "t": trigger, "a": action})
    logged = {}
    for n in range(events):
        version = (await gql(LOG, {"i": await version_input(gql, n, "bench-data")}))["logArtifactVersion"]
        logged[version["id"]] = at(version["createdAt"])
    while True:
        jobs = [j for j in (await gql(JOBS))["launchJobs"]["items"] if j["triggeredBy"]]
        if len(jobs) >= events:
            break
        await asyncio.sleep(0.2)
    # The firing's event is the version's logging: its id is the triggering event's subject.
    firings = (
        await gql("{ automations(first: 1) { items { firings(first: 500) { items { eventId occurredAt } } } } }")
    )["automations"]["items"][0]["firings"]["items"]
    enqueued = {j["triggeredBy"]["event_id"]: at(j["enqueuedAt"]) for j in jobs}
    return [(enqueued[f["eventId"]] - at(f["occurredAt"])) * 1000 for f in firings if f["eventId"] in enqueued]


async def enqueue_to_start(gql: Gql, source: dict[str, Any], ledger: Path, jobs: int) -> list[float]:
    latencies = []
    for _ in range(jobs):
        job_id = (await gql(ENQUEUE, {"s": source, "c": {"ledger": str(ledger)}}))["enqueueJob"]["id"]
        while True:
            job = (await gql(JOB, {"id": job_id}))["launchJob"]
            if job["startedAt"] and job["state"] in ("FINISHED", "FAILED"):
                break
            await asyncio.sleep(0.05)
        latencies.append((at(job["startedAt"]) - at(job["enqueuedAt"])) * 1000)
    return latencies


async def webhook_delivery(gql: Gql, moves: int) -> list[float]:
    received: list[tuple[float, bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((time.time(), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        action = {
            "kind": "webhook",
            "url": f"http://127.0.0.1:{port}/hook",
            "allow_private_network": True,
            "payload": {"id": "${event_id}"},
        }
        await gql(AUTOMATION, {"n": "notify", "t": {"event": "alias_added", "registered_model": "bench"}, "a": action})
        ids = []
        for n in range(2):
            ids.append((await gql(LOG, {"i": await version_input(gql, n, "bench-model")}))["logArtifactVersion"]["id"])
            await gql(LINK, {"id": ids[-1], "a": []})
        for n in range(moves):
            await gql(ALIAS, {"id": ids[n % 2]})
        while len(received) < moves:
            await asyncio.sleep(0.1)
        moved = {r["eventId"]: at(r["occurredAt"]) for r in (await gql(AUDIT))["auditLog"]["items"]}
        return [(t - moved[json.loads(body)["id"]]) * 1000 for t, body in received if json.loads(body)["id"] in moved]
    finally:
        await runner.cleanup()


async def main(events: int) -> None:
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-") as tmp:
        os.chmod(tmp, 0o755)
        port = 18000 + os.getpid() % 1000
        url = f"http://127.0.0.1:{port}"
        server, started = start_server(Path(tmp) / "data", port)
        agent = None
        try:
            await until_ready(url, server, started)
            key_file = Path(tmp) / "data" / "admin-api-key"
            while not key_file.exists():  # written right after the server starts answering
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            key = key_file.read_text().strip()
            repo, commit = make_training_repo(Path(tmp) / "repo")
            source = {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": ["python", "record.py"]}
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
                gql = Gql(http, url)
                await gql('mutation { createLaunchQueue(input: {name: "cpu"}) { name } }')
                enqueue = await trigger_to_enqueue(gql, source, events)
                say(
                    f"event -> job enqueued:  p50 {statistics.median(enqueue):.1f} ms, "
                    f"p99 {pct(enqueue, 99):.1f} ms   target p50 <= 100"
                )
                agent = subprocess.Popen(
                    [sys.executable, "-m", "modelreg.services.cli", "agent", "--queue", "cpu"],
                    env={**os.environ, "MODELREG_URL": url, "MODELREG_API_KEY": key},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                start = await enqueue_to_start(gql, source, Path(tmp) / "ledger.txt", max(10, events // 3))
                say(
                    f"job enqueued -> agent started it: p50 {statistics.median(start):.0f} ms, "
                    f"p99 {pct(start, 99):.0f} ms   target p50 <= 1000"
                )
                hooks = await webhook_delivery(gql, events)
                say(
                    f"alias moved -> webhook received: p50 {statistics.median(hooks):.1f} ms, "
                    f"p99 {pct(hooks, 99):.1f} ms   target p99 <= 200"
                )
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(30)
            stop(server)
    print(
        f"trigger_to_enqueue_p50_ms={statistics.median(enqueue):.1f} "
        f"enqueue_to_start_p50_ms={statistics.median(start):.0f} "
        f"webhook_p99_ms={pct(hooks, 99):.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60)
    asyncio.run(main(parser.parse_args().events))
