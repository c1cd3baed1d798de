"""A run whose process dies without a word (SIGKILL, out of memory) is marked crashed once its client has been
silent for a while, as W&B marks it; a run that is only quiet beats and stays running; one marked crashed whose
process comes back runs again and finishes as it ends. Runs of clients that never beat are left alone."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from support.stack import Stack
from support.story import START_RUN
from support.waiting import wait_until

import modelreg
import modelreg.heartbeat
from modelreg.services.automations import crashed_runs, runner
from modelreg.services.commands import handlers
from modelreg.services.settings import Settings

pytestmark = pytest.mark.parametrize("log_kind", ["postgres"])

KILLED = """
import os
import time

import modelreg

run = modelreg.init(project="crash", id="killed")
run.summary["note"] = "set by the script"
run.log({"loss": 2.0, "acc": 0.25})
run.log({"loss": 1.0})
run.summary["acc"] = 0.75  # the script's own word on a logged metric
run.flush()
# The start's beat goes from a thread of its own: a process killed alive for a while has sent it (one killed
# within milliseconds of init may not have, and is then never marked, as a run of another tool).
while modelreg.Api().run("alice/crash/killed").heartbeat_at is None:
    time.sleep(0.05)
os._exit(1)  # no finish, no atexit: as SIGKILL or the out-of-memory killer leaves it
"""
TERMINATED = """
import signal
import sys
import time

import modelreg

run = modelreg.init(project="crash", id=sys.argv[1])
stop_asked = []
if sys.argv[1] == "own-handler":  # the script chose what SIGTERM does: it stays its choice
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if sys.argv[1] == "chained":  # as Lightning's: its own handler, which calls the one it found (modelreg's)
    found = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *a: (stop_asked.append(True), found(*a)))
for step in range(20_000):
    run.log({"loss": 1.0 / (step + 1)})
print("logged", flush=True)
if sys.argv[1] == "busy":  # stopped inside run.log, which holds the run's lock while the finish needs it
    step = 20_000
    while True:
        run.log({"loss": 1.0 / (step + 1)})
        step += 1
deadline = time.monotonic() + 120
while time.monotonic() < deadline and not stop_asked:  # a long training step, where the scheduler's stop finds it
    time.sleep(0.01)
run.summary["stopped_cleanly"] = True  # the framework's own end: a checkpoint, then the script returns
"""
PREEMPTED = """
import os
import signal

import modelreg as wandb

run = wandb.init(project="crash", id="preempted", resume="allow")
wandb.define_metric("acc", summary="max")
wandb.define_metric("loss", summary="mean")
for acc, loss in ((0.5, 4.0), (0.95, 2.0), (0.6, 3.0)):
    wandb.log({"acc": acc, "loss": loss, "warmup_lr": acc / 10})
run.summary["best_epoch"] = 1
run.flush()
os.kill(os.getpid(), signal.SIGKILL)  # preempted: no finish, no summary sent
"""

STATE = 'query($r: String!) { run(entity: "alice", project: "crash", runId: $r) { state } }'


async def state_of(stack: Stack, run_id: str) -> str:
    return (await stack.graphql(STATE, {"r": run_id}))["data"]["run"]["state"]


async def test_a_killed_run_is_marked_crashed_and_a_quiet_one_stays_running(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modelreg.heartbeat, "EVERY_S", 0.3)  # the client's beat; the server's 2 s below
    monkeypatch.setattr(handlers, "HEARTBEAT_AT_MOST_EVERY", timedelta(0))  # the server keeps a beat a minute
    async with Stack(dataclasses.replace(settings, run_crashed_after_s=2.0)) as stack:
        assert stack.client is not None
        monkeypatch.setenv("MODELREG_URL", str(stack.client.make_url("/")).rstrip("/"))
        (tmp_path / "killed.py").write_text(KILLED)
        env = {**os.environ, "PYTHONPATH": ""}
        died = await asyncio.to_thread(
            subprocess.run, [sys.executable, "killed.py"], cwd=tmp_path, env=env, capture_output=True, timeout=120
        )
        assert died.returncode == 1, died.stderr
        await stack.graphql(START_RUN, {"input": {"entity": "alice", "project": "crash", "runId": "no-beats"}})

        def quiet_run() -> str:
            with modelreg.init(project="crash", id="quiet"):
                time.sleep(4)  # logs nothing for twice the server's limit: its beats keep it running
                return modelreg.Api().run("alice/crash/quiet").state

        assert await asyncio.to_thread(quiet_run) == "running"
        await wait_until(lambda: _is(stack, "killed", "CRASHED"), timeout_s=30)
        assert await state_of(stack, "quiet") == "FINISHED"
        assert await state_of(stack, "no-beats") == "RUNNING"  # another tool's run, which never beat

        crashed = await asyncio.to_thread(
            lambda: [r.id for r in modelreg.Api().runs("alice/crash", filters={"state": "crashed"})]
        )
        assert crashed == ["killed"]  # as W&B's scripts find them
        # Its summary is what its client never sent, the metrics' last values, beside what the script set itself.
        found = await asyncio.to_thread(lambda: modelreg.Api().run("alice/crash/killed").summary)
        assert dict(found) == {"note": "set by the script", "loss": 1.0, "acc": 0.75}
        low = await asyncio.to_thread(
            lambda: [r.id for r in modelreg.Api().runs("alice/crash", filters={"summary_metrics.loss": {"$lte": 1}})]
        )
        assert low == ["killed"]

        # Its process was only cut off: what it logs next makes it run again, and its finish says how it ended.
        log = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"
        batch = {"entity": "alice", "project": "crash", "runId": "killed"}
        await stack.graphql(log, {"i": {**batch, "series": [{"key": "loss", "firstStep": 1, "values": [0.9]}]}})
        assert await state_of(stack, "killed") == "RUNNING"
        await wait_until(lambda: _is(stack, "killed", "CRASHED"), timeout_s=30)  # silent again: marked again
        beat = 'mutation { runHeartbeat(input: {entity: "alice", project: "crash", runId: "killed"}) }'
        assert (await stack.graphql(beat))["data"] == {"runHeartbeat": True}
        assert await state_of(stack, "killed") == "RUNNING"
        finish = 'mutation { finishRun(input: {entity: "alice", project: "crash", runId: "killed"}) { state } }'
        assert (await stack.graphql(finish))["data"]["finishRun"]["state"] == "FINISHED"
        refused = await stack.graphql(beat)  # a finished run beats no more (resumed, it would)
        assert refused["errors"][0]["extensions"]["code"] == "CONFLICT"
        heard = await asyncio.to_thread(
            lambda: [
                (r.id, r.heartbeatAt is not None) for r in modelreg.Api().runs("alice/crash", order="-heartbeat_at")
            ]
        )
        assert heard[0] == ("killed", True)  # heard from last: it just finished
        audit = '{ auditLog(stream: "run:alice/crash/killed", first: 50) { items { action actor } } }'
        items = (await stack.graphql(audit))["data"]["auditLog"]["items"]
        assert {"action": "runs.run_finished", "actor": "service:modelreg-run-supervisor"} in items
        assert "runs.run_heartbeat" not in {i["action"] for i in items}  # nobody's action: not in the audit log


async def test_a_run_stopped_by_sigterm_is_finished_with_every_point_before_the_process_ends(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A scheduler's stop (Kubernetes, Slurm, a reclaimed spot instance, a cancelled Launch job) is a SIGTERM: the
    # process ended at once, the points of its last window were lost and its run showed running for 15 minutes.
    async with Stack(settings) as stack:
        assert stack.client is not None
        monkeypatch.setenv("MODELREG_URL", str(stack.client.make_url("/")).rstrip("/"))
        (tmp_path / "terminated.py").write_text(TERMINATED)
        env = {**os.environ, "PYTHONPATH": ""}

        def stop(run_id: str) -> tuple[int, str]:
            script = subprocess.Popen(
                [sys.executable, "terminated.py", run_id],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert script.stdout is not None and script.stdout.readline() == "logged\n"
            script.send_signal(signal.SIGTERM)
            _, stderr = script.communicate(timeout=60)
            return script.returncode, stderr

        code, stderr = await asyncio.to_thread(stop, "terminated")
        assert code == -signal.SIGTERM, stderr  # it still ends as SIGTERM ends it, for whatever waits on it
        assert "SIGTERM: finishing run alice/crash/terminated" in stderr
        ended = """query($r: String!) {
          run(entity: "alice", project: "crash", runId: $r) { state exitCode lastHistoryStep } }"""
        run = (await stack.graphql(ended, {"r": "terminated"}))["data"]["run"]
        assert run == {"state": "FAILED", "exitCode": 143, "lastHistoryStep": 19_999}
        points = await asyncio.to_thread(
            lambda: len(list(modelreg.Api().run("alice/crash/terminated").scan_history(keys=["loss"])))
        )
        assert points == 20_000

        # Stopped while it logs without pause: the finish waits for the run's lock, which the main thread gives
        # back once the handler has returned (it waited for the finish, holding the lock: 20 s, the run unfinished).
        code, stderr = await asyncio.to_thread(stop, "busy")
        assert code == -signal.SIGTERM and "not finished within" not in stderr, stderr
        busy = (await stack.graphql(ended, {"r": "busy"}))["data"]["run"]
        assert busy["state"] == "FAILED" and busy["exitCode"] == 143 and busy["lastHistoryStep"] >= 19_999
        points = await asyncio.to_thread(
            lambda: len(list(modelreg.Api().run("alice/crash/busy").scan_history(keys=["loss"])))
        )
        assert points == busy["lastHistoryStep"] + 1  # no step lost on the way

        # A script that handles SIGTERM itself, or a framework that chains the handler it found, keeps its own way
        # to end; the exit finishes the run as it ends.
        for run_id in ("own-handler", "chained"):
            code, stderr = await asyncio.to_thread(stop, run_id)
            assert code == 0 and "SIGTERM: finishing" not in stderr, stderr
            assert (await stack.graphql(ended, {"r": run_id}))["data"]["run"]["state"] == "FINISHED"


async def test_a_preempted_run_resumed_before_it_is_marked_crashed_summarizes_its_whole_history(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its summary on the server was only what the script set itself: the killed process's metrics were missing from
    # it, and define_metric's max went on from the values logged after the resume alone.
    async with Stack(settings) as stack:  # silent runs are marked after 15 minutes, as by default
        assert stack.client is not None
        monkeypatch.setenv("MODELREG_URL", str(stack.client.make_url("/")).rstrip("/"))
        (tmp_path / "preempted.py").write_text(PREEMPTED)
        env = {**os.environ, "PYTHONPATH": ""}
        killed = await asyncio.to_thread(
            subprocess.run, [sys.executable, "preempted.py"], cwd=tmp_path, env=env, capture_output=True, timeout=120
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert await state_of(stack, "preempted") == "RUNNING"

        def restarted() -> dict:
            run = modelreg.init(project="crash", id="preempted", resume="allow")
            modelreg.define_metric("acc", summary="max")
            modelreg.define_metric("loss", summary="mean")
            seen = dict(run.summary)
            for acc, loss in ((0.6, 1.0), (0.7, 0.0)):
                modelreg.log({"acc": acc, "loss": loss})
            modelreg.finish()
            return seen

        seen = await asyncio.to_thread(restarted)
        before = {"best_epoch": 1, "acc": {"max": 0.95}, "loss": {"mean": 3.0}, "warmup_lr": 0.6 / 10}
        assert seen == before
        found = await asyncio.to_thread(lambda: modelreg.Api().run("alice/crash/preempted").summary)
        assert dict(found) == {**before, "loss": {"mean": 2.0}}


async def _is(stack: Stack, run_id: str, state: str) -> bool:
    return await state_of(stack, run_id) == state


async def test_a_run_whose_launch_attempt_is_over_is_marked_crashed_without_waiting_for_the_silence(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its job was cancelled (or timed out, or its agent died): the agent killed the job's processes, so no beat is
    # coming. It showed as running for 15 minutes.
    monkeypatch.setattr(crashed_runs, "ENDED_ATTEMPT_SILENT_S", 0.0)
    monkeypatch.setattr(runner, "RUNS_SUPERVISED_EVERY_S", 0.5)
    async with Stack(settings) as stack:  # silent runs are marked after 15 minutes, as by default
        await stack.graphql('mutation { createLaunchQueue(input: {name: "cpu", resource: DOCKER}) { name } }')
        enqueue = """mutation($s: GenericScalar) {
          enqueueJob(input: {queue: "cpu", entity: "alice", project: "crash", source: $s}) { id } }"""
        source = {"kind": "image", "image": "python:3.12", "entry_point": ["python", "train.py"]}
        cancelled, live = [(await stack.graphql(enqueue, {"s": source}))["data"]["enqueueJob"]["id"] for _ in "ab"]
        agent = await stack.key("service:agent", role="member")
        ids = {"id": live, "agentId": "service:agent:host-1"}
        await stack.graphql("mutation($i: ClaimJobInput!) { claimJob(input: $i) { attempt } }", {"i": ids}, key=agent)
        started = "mutation($i: ReportJobStartedInput!) { reportJobStarted(input: $i) { state } }"
        await stack.graphql(started, {"i": {**ids, "attempt": 1}}, key=agent)
        beat = {"agentId": ids["agentId"], "queues": ["cpu"], "runningJobs": [live]}  # its agent is alive
        await stack.graphql("mutation($i: AgentHeartbeatInput!) { agentHeartbeat(input: $i) }", {"i": beat}, key=agent)
        # A run's environment is its script's to write: an id that is no job's holds up no other run's mark.
        for job, run_id in ((cancelled, "orphan"), (live, "alive"), ("not-a-job'); --", "forged")):
            start = {"entity": "alice", "project": "crash", "runId": run_id, "environment": {"launch": {"job_id": job}}}
            await stack.graphql(START_RUN, {"input": start})
        await stack.graphql("mutation($id: ID!) { cancelJob(input: {id: $id}) { state } }", {"id": cancelled})

        await wait_until(lambda: _is(stack, "orphan", "CRASHED"), timeout_s=30)
        assert await state_of(stack, "alive") == "RUNNING"  # its attempt runs on
        assert await state_of(stack, "forged") == "RUNNING"
