"""Metrics from training code: `run.log` through the background sender to the server, and the history read
back (sampled curves, every point page by page), against a real server."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

import pytest
from support.stack import Stack
from support.waiting import wait_until

import modelreg
from modelreg.spool import Spool
from modelreg.sync import sync_offline_run
from modelreg.transport import Transport

HISTORY = """query($r: String!, $keys: [String!], $samples: Int!) {
  run(entity: "acme", project: "nature", runId: $r) {
    history(keys: $keys, samples: $samples) { key steps values points } } }"""
SCAN = """query($r: String!, $keys: [String!], $first: Int!, $after: String) {
  run(entity: "acme", project: "nature", runId: $r) {
    scanHistory(keys: $keys, first: $first, after: $after) { items { step values } endCursor hasNextPage } } }"""


def log_curves(url: str, steps: int) -> str:
    with modelreg.init(project="nature", entity="acme", url=url) as run:
        for step in range(steps):
            # val_loss is sparse, at the same step as the others: W&B's rules drop a log at a step already
            # committed, so it goes with that step's other values (commit=False would do too).
            sparse = {"val_loss": 2 / (step + 1)} if step % 1000 == 999 else {}
            run.log({"loss": 1 / (step + 1), "acc": step / steps, **sparse})
        return run.id


async def scan_all(stack: Stack, run_id: str, keys: list[str] | None, first: int) -> list[dict]:
    rows, after = [], None
    while True:
        page = (await stack.graphql(SCAN, {"r": run_id, "keys": keys, "first": first, "after": after}))["data"]
        page = page["run"]["scanHistory"]
        rows += page["items"]
        if not page["hasNextPage"]:
            return rows
        after = page["endCursor"]


async def test_every_logged_point_is_stored_in_order_and_read_back_sampled_or_whole(stack: Stack) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    steps = 20_000
    run_id = await asyncio.to_thread(log_curves, url, steps)

    curves = (await stack.graphql(HISTORY, {"r": run_id, "keys": None, "samples": 500}))["data"]["run"]["history"]
    by_key = {c["key"]: c for c in curves}
    assert sorted(by_key) == ["acc", "loss", "val_loss"]
    assert by_key["loss"]["points"] == steps and by_key["val_loss"]["points"] == steps // 1000
    loss = by_key["loss"]  # a long curve is sampled from every 32nd step, between its real first and last
    assert len(loss["steps"]) == 500 and loss["steps"][0] == 0 and loss["steps"][-1] == steps - 1
    assert loss["steps"] == sorted(set(loss["steps"]))
    inner = loss["steps"][:-1]
    assert {b - a for a, b in zip(inner, inner[1:], strict=False)} <= {32, 64}
    assert loss["values"] == [pytest.approx(1 / (s + 1)) for s in loss["steps"]]
    assert by_key["val_loss"]["steps"] == list(range(999, steps, 1000))

    rows = await scan_all(stack, run_id, ["loss", "val_loss"], first=3000)
    assert [r["step"] for r in rows] == list(range(steps))
    assert all(r["values"]["loss"] == pytest.approx(1 / (r["step"] + 1)) for r in rows)
    assert [r["step"] for r in rows if "val_loss" in r["values"]] == list(range(999, steps, 1000))

    sparse = await scan_all(stack, run_id, ["val_loss"], first=7)
    assert [r["step"] for r in sparse] == list(range(999, steps, 1000))


async def test_a_sampled_curve_starts_and_ends_at_its_real_first_and_last_points(stack: Stack) -> None:
    # Sampled from the thumbnails (every 32nd step) alone, a chart's last value could be 31 steps stale.
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    def log_from_5_to_4004() -> str:
        with modelreg.init(project="nature", entity="acme", url=url) as run:
            for step in range(5, 4005):
                run.log({"loss": float(step)}, step=step)
            return run.id

    run_id = await asyncio.to_thread(log_from_5_to_4004)
    for samples, expected in [(2, [5, 4004]), (1, [4004])]:
        [curve] = (await stack.graphql(HISTORY, {"r": run_id, "keys": ["loss"], "samples": samples}))["data"]["run"][
            "history"
        ]
        assert (curve["steps"], curve["values"]) == (expected, [float(s) for s in expected]), samples


async def test_a_value_logged_again_at_a_step_replaces_the_earlier_one(stack: Stack) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    def log_twice() -> str:
        with modelreg.init(project="nature", entity="acme", url=url) as run:
            run.log({"loss": 1.0}, step=0)
            run.log({"loss": 0.8}, step=1)
            run.flush()  # the next value of step 1 travels in another batch
            run.log({"loss": 0.7}, step=1)
            run.log({"loss": 0.6}, step=2)
            return run.id

    run_id = await asyncio.to_thread(log_twice)
    rows = await scan_all(stack, run_id, None, first=10)
    assert [(r["step"], r["values"]["loss"]) for r in rows] == [(0, 1.0), (1, 0.7), (2, 0.6)]


async def test_rows_sent_through_log_metrics_land_in_the_same_history(stack: Stack) -> None:
    """The mutation offline spools recorded by older clients are synced with."""
    await stack.graphql(
        'mutation { startRun(input: {entity: "acme", project: "nature", runId: "old-client"}) { runId } }'
    )
    rows = [{"step": 0, "values": {"loss": 1.0}}, {"step": 1, "values": {"loss": 0.5, "acc": 0.2}}]
    logged = await stack.graphql(
        "mutation($rows: [MetricRowInput!]!) "
        '{ logMetrics(input: {entity: "acme", project: "nature", runId: "old-client", rows: $rows}) }',
        {"rows": rows},
    )
    assert logged["data"]["logMetrics"] == 2
    answer = await stack.graphql(
        '{ run(entity: "acme", project: "nature", runId: "old-client") { metrics { key step value } } }'
    )
    assert answer["data"]["run"]["metrics"] == [
        {"key": "acc", "step": 1, "value": 0.2},
        {"key": "loss", "step": 0, "value": 1.0},
        {"key": "loss", "step": 1, "value": 0.5},
    ]


async def test_a_gzipped_batch_is_accepted_and_one_that_inflates_past_the_body_limit_is_refused(stack: Stack) -> None:
    assert stack.client is not None
    await stack.graphql('mutation { startRun(input: {entity: "acme", project: "nature", runId: "zipped"}) { runId } }')
    query = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"
    batch = {
        "entity": "acme",
        "project": "nature",
        "runId": "zipped",
        "series": [{"key": "loss", "firstStep": 0, "values": [0.5] * 1000}],
    }
    headers = {**(await stack.auth()), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    body = gzip.compress(json.dumps({"query": query, "variables": {"i": batch}}).encode())
    response = await stack.client.post("/graphql", data=body, headers=headers)
    assert (await response.json()) == {"data": {"logMetricBatch": 1000}}

    limit = stack.settings.max_body_bytes
    huge = {**batch, "series": [{"key": "loss", "firstStep": 0, "values": [0.5] * (limit // 4)}]}
    body = gzip.compress(json.dumps({"query": query, "variables": {"i": huge}}).encode())
    assert len(body) < limit // 10  # small on the wire, over the limit once inflated
    response = await stack.client.post("/graphql", data=body, headers=headers)
    assert response.status == 413
    assert "over this server's limit" in (await response.json())["errors"][0]["message"]


async def test_bad_batches_are_refused_at_the_door(stack: Stack) -> None:
    await stack.graphql('mutation { startRun(input: {entity: "acme", project: "nature", runId: "refused"}) { runId } }')
    query = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"
    run = {"entity": "acme", "project": "nature", "runId": "refused"}
    for series, problem in [
        ([{"key": "loss", "firstStep": 3, "steps": [3, 2], "values": [1, 2]}], "increase strictly"),
        ([{"key": "loss", "firstStep": 0, "values": "1,2"}], "JSON array of numbers"),
        (
            [{"key": "loss", "firstStep": 0, "values": [1]}, {"key": "loss", "firstStep": 5, "values": [1]}],
            "once in a batch",
        ),
        ([{"key": "loss", "firstStep": 0, "values": [0.5] * 100_001}], "over the limit of 100,000"),
        ([{"key": "lo\u0000ss", "firstStep": 0, "values": [0.5]}], "U\\+0000"),
    ]:
        answer = await stack.graphql(query, {"i": {**run, "series": series}})
        assert "data" not in answer or answer["data"] is None, answer
        assert re.search(problem, answer["errors"][0]["message"]), answer


async def test_an_offline_run_spools_its_metric_batches_and_sync_uploads_them(stack: Stack, tmp_path: Path) -> None:
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    def offline() -> Path:
        with modelreg.init(project="nature", entity="acme", mode="offline", offline_dir=tmp_path) as run:
            for step in range(5000):
                run.log({"loss": float(step)})
            return run.spool.folder

    folder = await asyncio.to_thread(offline)
    assert [e.kind for e in Spool(folder).entries()] == ["start_run", "log_metrics", "finish_run"]
    transport = Transport(url)
    try:
        await asyncio.to_thread(sync_offline_run, folder, transport, show_progress=False)
    finally:
        transport.close()
    run_id = Spool(folder).entries()[0].input["runId"]
    rows = await scan_all(stack, run_id, ["loss"], first=2000)
    assert [(r["step"], r["values"]["loss"]) for r in rows] == [(s, float(s)) for s in range(5000)]


CRASHING_SCRIPT = """
import sys, time, modelreg
run = modelreg.init(project="nature", entity="acme", url=sys.argv[1], id="crashing")
run._metrics.window_s = 0.2
for step in range(10**9):
    run.log({"loss": float(step)})
    print(step, time.time(), flush=True)
    time.sleep(0.005)
"""


async def test_a_training_process_killed_mid_run_loses_at_most_the_last_window(stack: Stack, tmp_path: Path) -> None:
    assert stack.client is not None
    script = tmp_path / "train.py"
    script.write_text(CRASHING_SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script), str(stack.client.make_url("/"))],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    logged: list[tuple[int, float]] = []
    assert process.stdout is not None
    started = time.time()
    while time.time() - started < 60 and len(logged) < 300:
        line = await asyncio.to_thread(process.stdout.readline)
        if not line:
            break
        step, at = line.split()
        logged.append((int(step), float(at)))
    process.send_signal(signal.SIGKILL)
    killed_at = time.time()
    process.wait()
    process.stdout.close()
    assert len(logged) == 300, "the training script did not get going"

    window, slack = 0.2, 1.0  # slack: a batch in flight at the kill, and a loaded machine
    must_have = {step for step, at in logged if at < killed_at - window - slack}
    assert must_have, "the script ran too briefly to tell"

    async def all_stored() -> bool:
        rows = await scan_all(stack, "crashing", ["loss"], first=10_000)
        return must_have <= {r["step"] for r in rows}

    await wait_until(all_stored, timeout_s=10)


async def test_a_scan_that_could_read_too_many_points_is_refused_before_reading_them(stack: Stack) -> None:
    await stack.graphql('mutation { startRun(input: {entity: "acme", project: "nature", runId: "wide"}) { runId } }')
    series = [{"key": f"layer_{n}", "firstStep": 0, "values": [0.1]} for n in range(101)]
    batch = {"entity": "acme", "project": "nature", "runId": "wide", "series": series}
    logged = await stack.graphql("mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }", {"i": batch})
    assert logged["data"]["logMetricBatch"] == 101

    refused = await stack.graphql(SCAN, {"r": "wide", "keys": None, "first": 10_000, "after": None})
    assert "101 metrics x 10000 steps could be over 1,000,000 points" in refused["errors"][0]["message"]
    rows = await scan_all(stack, "wide", None, first=100)
    assert rows == [{"step": 0, "values": {f"layer_{n}": 0.1 for n in range(101)}}]


async def test_a_wide_runs_metric_names_are_read_a_page_at_a_time_and_found_by_a_part_of_their_name(
    stack: Stack,
) -> None:
    # The web UI charts a few of a run's metrics at a time: it asks their names first, then those curves' history.
    await stack.graphql('mutation { startRun(input: {entity: "acme", project: "nature", runId: "wide"}) { runId } }')
    series = [{"key": f"layer_{n:02d}/grad", "firstStep": 0, "values": [0.1]} for n in range(30)]
    series.append({"key": "loss", "firstStep": 0, "values": [0.5]})
    batch = {"entity": "acme", "project": "nature", "runId": "wide", "series": series}
    await stack.graphql("mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }", {"i": batch})
    keys = """query($search: String, $after: String) { run(entity: "acme", project: "nature", runId: "wide") {
      metricCount metricKeys(first: 20, search: $search, after: $after) { items endCursor hasNextPage } } }"""

    first = (await stack.graphql(keys))["data"]["run"]
    assert first["metricCount"] == 31
    assert first["metricKeys"]["items"] == [f"layer_{n:02d}/grad" for n in range(20)]
    assert first["metricKeys"]["hasNextPage"]
    after = first["metricKeys"]["endCursor"]
    second = (await stack.graphql(keys, {"after": after}))["data"]["run"]["metricKeys"]
    assert second["items"] == [f"layer_{n:02d}/grad" for n in range(20, 30)] + ["loss"] and not second["hasNextPage"]

    found = (await stack.graphql(keys, {"search": "LAYER_2"}))["data"]["run"]["metricKeys"]
    assert found["items"] == [f"layer_{n}/grad" for n in range(20, 30)]
    assert (await stack.graphql(keys, {"search": "LOSS"}))["data"]["run"]["metricKeys"]["items"] == ["loss"]
    refused = await stack.graphql(keys, {"after": "bm90IGEgY3Vyc29y"})
    assert "is not one this API returned" in refused["errors"][0]["message"]


def log_loss_and_a_sparse_val_loss(url: str, steps: int) -> str:
    with modelreg.init(project="nature", entity="acme", url=url) as run:
        for step in range(steps):
            run.log({"loss": 1 / (step + 1), **({"val_loss": float(step)} if step % 10 == 0 else {})})
        return run.id


async def test_a_sampled_history_of_two_metrics_keeps_rows_holding_both(stack: Stack) -> None:
    # W&B's `run.history(keys=[...], samples=n)`: about n rows spread over the steps where every key was logged,
    # each holding all of them; the steps are chosen once for the keys together, not per curve.
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    run_id = await asyncio.to_thread(log_loss_and_a_sparse_val_loss, url, 1000)
    run = await asyncio.to_thread(lambda: modelreg.Api(url).run(f"acme/nature/{run_id}"))

    rows = await asyncio.to_thread(run.history, keys=["loss", "val_loss"], samples=10, pandas=False)
    assert len(rows) == 10
    assert rows[0]["_step"] == 0 and rows[-1]["_step"] == 990  # the first and last step holding both
    for row in rows:
        assert row == {"_step": row["_step"], "loss": pytest.approx(1 / (row["_step"] + 1)), "val_loss": row["_step"]}
    assert [r["_step"] for r in rows] == sorted({r["_step"] for r in rows})

    rows = await asyncio.to_thread(run.history, keys=["val_loss", "loss"], samples=50, pandas=False)
    assert len(rows) == 50 and all(set(r) == {"_step", "loss", "val_loss"} for r in rows)
    every = await asyncio.to_thread(run.history, keys=["val_loss", "loss"], samples=500, pandas=False)
    assert [r["_step"] for r in every] == list(range(0, 1000, 10))  # fewer shared steps than samples: all of them


async def test_a_sampled_history_without_keys_samples_each_metric_on_its_own_and_loses_none(stack: Stack) -> None:
    # Steps chosen once for every metric (as with keys) would leave out a metric logged at steps few of them are.
    assert stack.client is not None
    url = str(stack.client.make_url("/"))
    run_id = await asyncio.to_thread(log_loss_and_a_sparse_val_loss, url, 1000)
    run = await asyncio.to_thread(lambda: modelreg.Api(url).run(f"acme/nature/{run_id}"))

    rows = await asyncio.to_thread(run.history, pandas=False)  # W&B's default, 500 samples
    assert rows[0]["_step"] == 0 and rows[-1]["_step"] == 999
    assert len([row for row in rows if "loss" in row]) == 500
    assert [row["_step"] for row in rows if "val_loss" in row] == list(range(0, 1000, 10))  # all 100 of them
    for row in rows:
        assert row.get("loss", pytest.approx(1 / (row["_step"] + 1))) == pytest.approx(1 / (row["_step"] + 1))
        assert row.get("val_loss", row["_step"]) == row["_step"]
    assert await asyncio.to_thread(run.history, samples=2000, pandas=False) == [
        {"_step": s, "loss": pytest.approx(1 / (s + 1)), **({"val_loss": s} if s % 10 == 0 else {})}
        for s in range(1000)
    ]


async def test_a_long_sampled_history_of_two_metrics_starts_and_ends_at_their_real_shared_steps(stack: Stack) -> None:
    # Sampled from the thumbnails (every 32nd step) when they hold enough shared steps; its ends are still the
    # real first and last steps holding both.
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    def log_two_overlapping_curves() -> str:
        with modelreg.init(project="nature", entity="acme", url=url) as run:
            for step in range(3, 20_000):
                run.log({"a": float(step), **({"b": -float(step)} if 7 <= step <= 19_990 else {})}, step=step)
            return run.id

    run_id = await asyncio.to_thread(log_two_overlapping_curves)
    run = await asyncio.to_thread(lambda: modelreg.Api(url).run(f"acme/nature/{run_id}"))
    rows = await asyncio.to_thread(run.history, keys=["a", "b"], samples=100, pandas=False)
    assert len(rows) == 100 and rows[0]["_step"] == 7 and rows[-1]["_step"] == 19_990
    assert all(r == {"_step": r["_step"], "a": r["_step"], "b": -r["_step"]} for r in rows)
    one = await asyncio.to_thread(run.history, keys=["a", "b"], samples=1, pandas=False)
    assert one == [{"_step": 19_990, "a": 19_990.0, "b": -19_990.0}]
    assert await asyncio.to_thread(run.history, keys=["a", "missing"], samples=10, pandas=False) == []


HISTORY_SUMMARY = """query($r: String!) {
  run(entity: "acme", project: "nature", runId: $r) { state historySummary { key last min max sum points } } }"""


async def test_values_too_large_to_add_up_leave_their_run_finished_summarized_and_resumable(stack: Stack) -> None:
    # PostgreSQL's float8 `+` raised on 1e308 + 1e308 (logged in two batches): the run's stream was parked and its
    # finish never applied. In one batch, Python's sum was inf: historySummary could not answer it, nor a resume ask.
    assert stack.client is not None
    url = str(stack.client.make_url("/"))

    async def summary_of(run_id: str) -> dict:
        return (await stack.graphql(HISTORY_SUMMARY, {"r": run_id}))["data"]["run"]

    async def logged(run_id: str) -> bool:
        run = await summary_of(run_id)
        return run is not None and bool(run["historySummary"])

    apart = await asyncio.to_thread(modelreg.init, project="nature", entity="acme", url=url)
    apart.log({"x": 1e308})
    await asyncio.to_thread(apart.flush)
    await wait_until(lambda: logged(apart.id))  # projected: the next value is added in SQL
    apart.log({"x": 1e308})
    await asyncio.to_thread(apart.finish)

    def together() -> str:
        with modelreg.init(project="nature", entity="acme", url=url) as run:
            run.log({"x": 1e308})
            run.log({"x": 1e308})
            return run.id

    together_id = await asyncio.to_thread(together)
    for run_id in (apart.id, together_id):
        await wait_until(lambda run_id=run_id: _is_finished(summary_of(run_id)), timeout_s=30)
        run = await summary_of(run_id)
        assert run["historySummary"] == [
            {"key": "x", "last": 1e308, "min": 1e308, "max": 1e308, "sum": None, "points": 2}
        ]

    def resumed() -> dict:
        run = modelreg.init(project="nature", entity="acme", url=url, id=together_id, resume="allow")
        run.define_metric("x", summary="max,mean")
        run.log({"x": 2.0})
        seen = dict(run.summary)
        run.finish()
        return seen

    # The mean is not carried over what could not be added up: it goes on from this process's values.
    assert await asyncio.to_thread(resumed) == {"x": {"max": 1e308, "mean": 2.0}}


async def _is_finished(run: Awaitable[dict]) -> bool:
    return (await run)["state"] == "FINISHED"
