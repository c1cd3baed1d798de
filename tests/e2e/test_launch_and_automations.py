"""The demo's second half: automations that react to events, Launch queues, and agents that run jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest
import yaml
from support.command_line import command_line
from support.stack import Stack
from support.story import file_entry
from support.training_repo import make_training_repo
from support.waiting import wait_until

import modelreg
from modelreg.services.agent.agent import docker_answers

LOGS = ["kafka", "postgres"]


@pytest.fixture
def log_kind() -> str:
    """Kafka, the log of a deployment that runs agents. Agents reach the registry over HTTP alike over either log, and
    what the logs themselves do is the event log contract's (tests/integration/test_event_log_contract.py): run on
    both, these stories cost CI two minutes and told nothing more. The story in which `modelreg triggers` reads the log
    itself runs on both."""
    return "kafka"


CREATE_QUEUE = "mutation($n: String!) { createLaunchQueue(input: {name: $n}) { name resource } }"
CREATE_AUTOMATION = """mutation($n: String!, $t: GenericScalar!, $a: GenericScalar!, $c: Float) {
  createAutomation(input: {name: $n, trigger: $t, action: $a, cooldownS: $c}) { automation { id } webhookSecret }
}"""
ENQUEUE = """mutation($r: String, $s: GenericScalar, $c: GenericScalar, $o: GenericScalar, $p: Int) {
  enqueueJob(input: {queue: "cpu", entity: "acme", project: "nature", fromRun: $r, source: $s, config: $c,
  overrides: $o, priority: $p}) { id state }
}"""
JOB = """query($id: ID!) { launchJob(id: $id) {
  id state attempt requeues agentId exitCode reason config overrides triggeredBy source
  output(first: 500) { items { stream text } } } }"""
JOBS = "{ launchJobs(first: 500) { items { id state attempt triggeredBy config } } }"


@asynccontextmanager
async def agents(
    url: str,
    key: str,
    count: int = 1,
    max_jobs: int = 1,
    queues: tuple[str, ...] = ("cpu",),
    options: tuple[str, ...] = (),
) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """Real agent processes, as `modelreg agent --queue cpu` would run on a worker machine."""
    command = [
        sys.executable,
        "-m",
        "modelreg.services.cli",
        "agent",
        *(option for queue in queues for option in ("--queue", queue)),
        "--max-jobs",
        str(max_jobs),
        "--heartbeat",
        "0.5",
        *options,
    ]
    env = {**os.environ, "MODELREG_URL": url, "MODELREG_API_KEY": key}
    running = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(count)
    ]
    try:
        yield running
    finally:
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in running:
            # Waited for off the event loop: a stopping agent's last requests go to the API in this loop.
            await asyncio.to_thread(process.wait, 30)


async def _setup(stack: Stack, tmp_path: Path) -> tuple[str, str, str, str]:
    assert stack.client is not None
    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    repo, commit = make_training_repo(tmp_path / "repo")
    return str(stack.client.make_url("/")).rstrip("/"), await stack.key("service:agent", role="member"), repo, commit


async def _job(stack: Stack, job_id: str) -> dict[str, Any]:
    return (await stack.graphql(JOB, {"id": job_id}))["data"]["launchJob"]


def _log_dataset(url: str, folder: Path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 2))
    np.savetxt(folder / "data.csv", np.column_stack([x, x @ np.array([2.0, -1.0])]), delimiter=",")
    with modelreg.init(project="nature", entity="acme", job_type="ingest", url=url) as run:
        dataset = modelreg.Artifact("fresh-data", "dataset")
        dataset.add_file(folder / "data.csv")
        run.log_artifact(dataset)
        return dataset.id  # type: ignore[return-value]


async def test_new_data_retrains_and_a_better_candidate_is_evaluated_into_production(
    stack: Stack, tmp_path: Path
) -> None:
    url, key, repo, commit = await _setup(stack, tmp_path)
    source = {"kind": "git", "git_remote": repo, "git_commit": commit}
    retrain = {
        "kind": "launch",
        "queue": "cpu",
        "entity": "acme",
        "project": "nature",
        "source": {**source, "entry_point": ["python", "train.py"]},
        "config": {"dataset": "${artifact_ref}", "lr": 0.1, "epochs": 40},
    }
    evaluate = {
        "kind": "launch",
        "queue": "cpu",
        "entity": "acme",
        "project": "nature",
        "source": {**source, "entry_point": ["python", "evaluate.py"]},
        "config": {"candidate": "${artifact_ref}"},
    }
    on_data = {"event": "artifact_version_logged", "entity": "acme", "project": "nature", "collection": "fresh-data"}
    on_candidate = {"event": "alias_added", "registered_model": "fresh-model", "alias_pattern": "cand.*"}
    first = await stack.graphql(
        CREATE_AUTOMATION, {"n": "retrain on new data", "t": on_data, "a": retrain}, actor="user:ada"
    )
    second = await stack.graphql(
        CREATE_AUTOMATION, {"n": "evaluate candidates", "t": on_candidate, "a": evaluate}, actor="user:ada"
    )
    retrain_id = first["data"]["createAutomation"]["automation"]["id"]
    evaluate_id = second["data"]["createAutomation"]["automation"]["id"]
    data_folder = tmp_path / "data"
    data_folder.mkdir()

    async with agents(url, key):
        dataset_id = await asyncio.to_thread(_log_dataset, url, data_folder, 1)

        async def promoted() -> bool:
            model = (
                await stack.graphql(
                    '{ registeredModel(name: "fresh-model") { alias(name: "production") { version } } }'
                )
            )["data"]
            jobs = (await stack.graphql(JOBS))["data"]["launchJobs"]["items"]
            done = len(jobs) == 2 and all(j["state"] in ("FINISHED", "FAILED") for j in jobs)
            return done and bool(model["registeredModel"] and model["registeredModel"]["alias"])

        await wait_until(promoted, timeout_s=120)

    jobs = (await stack.graphql(JOBS))["data"]["launchJobs"]["items"]
    by_automation = {j["triggeredBy"]["automation_id"]: j for j in jobs}
    assert set(by_automation) == {retrain_id, evaluate_id} and all(j["state"] == "FINISHED" for j in jobs)
    train_job = await _job(stack, by_automation[retrain_id]["id"])
    assert train_job["config"]["dataset"] == "acme/nature/fresh-data:v0"
    assert any("trained" in o["text"] for o in train_job["output"]["items"])
    eval_job = await _job(stack, by_automation[evaluate_id]["id"])
    assert any("promoted to production" in o["text"] for o in eval_job["output"]["items"])

    model = (
        await stack.graphql(
            '{ registeredModel(name: "fresh-model") { versions { items { version aliases artifactVersion { id } } } } }'
        )
    )["data"]["registeredModel"]["versions"]["items"]
    assert [(v["version"], v["aliases"]) for v in model] == [("v0", ["candidate", "production"])]
    upstream = (
        await stack.graphql(
            "query($ref: String!) { lineage(ref: $ref, direction: UPSTREAM, depth: 2) { nodes { id } } }",
            {"ref": model[0]["artifactVersion"]["id"]},
        )
    )["data"]["lineage"]["nodes"]
    assert f"artifact:{dataset_id}" in {
        n["id"] for n in upstream
    }  # the candidate leads back to the data that fired the loop

    model_run = (
        await stack.graphql(
            "query($ref: String!) { lineage(ref: $ref, direction: UPSTREAM, depth: 1) "
            "{ nodes { run { jobType launchedBy { id triggeredBy } } } } }",
            {"ref": model[0]["artifactVersion"]["id"]},
        )
    )["data"]["lineage"]["nodes"]
    (trainer,) = [n["run"] for n in model_run if n["run"]]
    assert trainer["jobType"] == "train" and trainer["launchedBy"]["id"] == train_job["id"]
    assert (
        trainer["launchedBy"]["triggeredBy"]["automation_id"] == retrain_id
    )  # launched by job X, triggered by automation Y
    assert trainer["launchedBy"]["triggeredBy"]["event_type"] == "artifacts.version_logged"  # because of event Z

    audit = (await stack.graphql('{ auditLog(action: "launch.job_enqueued") { items { actor details } } }'))["data"][
        "auditLog"
    ]["items"]
    assert {r["actor"] for r in audit} == {f"automation:{retrain_id}", f"automation:{evaluate_id}"}
    firings = (
        await stack.graphql(
            "query($id: ID!) { automation(id: $id) { createdBy firings { items { status eventType jobId } } } }",
            {"id": retrain_id},
        )
    )["data"]["automation"]
    assert firings["createdBy"] == "user:ada"
    assert [(f["status"], f["eventType"]) for f in firings["firings"]["items"]] == [
        ("ENQUEUED", "artifacts.version_logged")
    ]


async def test_a_finished_run_is_cloned_with_one_knob_changed_and_everything_else_kept(
    stack: Stack, tmp_path: Path
) -> None:
    url, key, repo, commit = await _setup(stack, tmp_path)
    # Code nobody `git add`ed yet, which the training script imports: the clone failed on the import without it. A
    # Python file too large for the run's record of its code is left out, and the script is told so at its start;
    # what is not Python source (a secret in .env, data) is not recorded at all.
    train = Path(repo) / "train.py"
    train.write_text("from helpers import GREETING\nprint(GREETING)\n" + train.read_text())
    (Path(repo) / "helpers.py").write_text('GREETING = "hello from a module git does not track"\n')
    (Path(repo) / "generated_table.py").write_text("TABLE = [\n" + "    0,\n" * 120_000 + "]\n")
    (Path(repo) / ".env").write_text("AWS_SECRET_ACCESS_KEY=do-not-record-me\n")
    (Path(repo) / "scratch.bin").write_bytes(os.urandom(600_000))
    env = {**os.environ, "MODELREG_URL": url, "MODELREG_API_KEY": key, "MODELREG_ENTITY": "acme"}
    # In a thread: the API under test answers from this event loop.
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "train.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "1 Python file(s) git does not track are left out of this run's record of its code" in done.stderr
    assert "generated_table.py; a clone of the run (Launch) will run without them" in done.stderr
    original = done.stdout.split("trained ", 1)[1].split()[0]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert "?? helpers.py" in status.stdout.splitlines()  # recorded through an index of its own: still untracked

    launched = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "modelreg.services.cli",
            "launch",
            "--queue",
            "cpu",
            "--from-run",
            f"acme/nature/{original}",
            "--config",
            "lr=0.01",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert launched.returncode == 0, launched.stderr
    job_id = launched.stdout.split()[1]

    async with agents(url, key):
        await wait_until(lambda: _finished(stack, job_id), timeout_s=90)
    job = await _job(stack, job_id)
    printed = "".join(o["text"] for o in job["output"]["items"])
    assert "hello from a module git does not track\n" in printed, printed
    clone = printed.split("trained ", 1)[1].split()[0]

    runs = (
        await stack.graphql(
            "query($a: String!, $b: String!) "
            '{ a: run(entity: "acme", project: "nature", runId: $a) { config environment } '
            'b: run(entity: "acme", project: "nature", runId: $b) { config environment } }',
            {"a": original, "b": clone},
        )
    )["data"]
    assert runs["b"]["config"] == {**runs["a"]["config"], "lr": 0.01}
    assert runs["b"]["environment"]["git"]["commit"] == runs["a"]["environment"]["git"]["commit"] == commit
    assert runs["b"]["environment"]["launch"] == {"job_id": job_id, "overrides": {"lr": 0.01}}
    assert job["source"]["cloned_from_run"] == f"acme/nature/{original}" and job["overrides"] == {"lr": 0.01}
    git = runs["a"]["environment"]["git"]
    assert (git["untracked"], git["untracked_omitted"], git["untracked_omitted_count"]) == (
        ["helpers.py"],
        ["generated_table.py"],
        1,
    )
    assert "do-not-record-me" not in git["diff"] and "scratch.bin" not in git["diff"]


async def test_a_run_with_too_large_uncommitted_changes_is_recorded_but_not_cloned(
    stack: Stack, tmp_path: Path
) -> None:
    url, key, repo, _ = await _setup(stack, tmp_path)
    (Path(repo) / "notes.txt").write_text("x" * 1_500_000)
    subprocess.run(["git", "add", "notes.txt"], cwd=repo, check=True)  # staged, so part of `git diff HEAD`
    env = {**os.environ, "MODELREG_URL": url, "MODELREG_API_KEY": key, "MODELREG_ENTITY": "acme"}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "train.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr  # the run is not lost to the size of its diff
    run_id = done.stdout.split()[1]
    run = await stack.graphql(
        'query($r: String!) { run(entity: "acme", project: "nature", runId: $r) { environment } }', {"r": run_id}
    )
    git = run["data"]["run"]["environment"]["git"]
    assert git["diff"] == "" and git["diff_omitted_bytes"] > 1_500_000
    refused = await stack.graphql(
        'mutation($r: String!) { enqueueJob(input: {queue: "cpu", entity: "acme", project: "nature", fromRun: $r}) { '
        "id } }",
        {"r": run_id},
    )
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert "commit them" in refused["errors"][0]["message"]


async def _finished(stack: Stack, job_id: str) -> bool:
    return (await _job(stack, job_id))["state"] in ("FINISHED", "FAILED")


async def _enqueue_records(
    stack: Stack,
    repo: str,
    commit: str,
    ledger: Path,
    count: int,
    sleep: float = 0,
    entry_point: tuple[str, ...] = ("python", "record.py"),
) -> list[str]:
    source = {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": list(entry_point)}
    ids = []
    for _ in range(count):
        answer = await stack.graphql(ENQUEUE, {"s": source, "c": {"ledger": str(ledger), "sleep": sleep}})
        ids.append(answer["data"]["enqueueJob"]["id"])
    return ids


async def _two_agents_run_each_job_once(stack: Stack, tmp_path: Path, count: int) -> None:
    url, key, repo, commit = await _setup(stack, tmp_path)
    ledger = tmp_path / "ledger.txt"
    ids = await _enqueue_records(stack, repo, commit, ledger, count)

    async with agents(url, key, count=2, max_jobs=2):

        async def all_finished() -> bool:
            states = [j["state"] for j in (await stack.graphql(JOBS))["data"]["launchJobs"]["items"]]
            return states.count("FINISHED") == count

        await wait_until(all_finished, timeout_s=60 + count * 2)

    ran = ledger.read_text().split()
    assert sorted(ran) == sorted(ids)  # every job ran, and none twice
    assert {j["attempt"] for j in (await stack.graphql(JOBS))["data"]["launchJobs"]["items"]} == {1}


async def test_two_agents_on_one_queue_run_each_of_40_jobs_exactly_once(stack: Stack, tmp_path: Path) -> None:
    await _two_agents_run_each_job_once(stack, tmp_path, 40)


@pytest.mark.slow
async def test_two_agents_on_one_queue_run_each_of_200_jobs_exactly_once(stack: Stack, tmp_path: Path) -> None:
    await _two_agents_run_each_job_once(stack, tmp_path, 200)


async def test_the_job_of_a_killed_agent_is_requeued_and_finishes_once(stack: Stack, tmp_path: Path) -> None:
    url, key, repo, commit = await _setup(stack, tmp_path)
    ledger = tmp_path / "ledger.txt"
    # A wrapper that forks, as a shell script, torchrun or a DataLoader's workers do: the signal the kernel sends
    # at the agent's death reaches its direct child only, and the recording process ran on beside attempt 2.
    wrapper = ("sh", "-c", f"{sys.executable} record.py; true")
    (job_id,) = await _enqueue_records(stack, repo, commit, ledger, 1, sleep=6, entry_point=wrapper)

    async with agents(url, key) as (doomed,):
        await wait_until(lambda: _state_is(stack, job_id, "RUNNING"), timeout_s=60)
        doomed.send_signal(signal.SIGKILL)  # its job dies with it, every process of it (job_guard.py)
    async with agents(url, key):
        await wait_until(lambda: _finished(stack, job_id), timeout_s=90)

    job = await _job(stack, job_id)
    assert (job["state"], job["attempt"], job["requeues"]) == ("FINISHED", 2, 1)
    assert ledger.read_text().split() == [job_id]
    requeued = (await stack.graphql('{ auditLog(action: "launch.job_requeued") { items { details } } }'))["data"][
        "auditLog"
    ]["items"]
    assert "vanished" in requeued[0]["details"]["reason"]


START_RUN = """mutation($e: String!, $r: String!) {
  startRun(input: {entity: $e, project: "nature", runId: $r}) { runId }
}"""


async def _answer_to(stack: Stack, key: str, query: str, variables: dict[str, Any]) -> str:
    """ok, the error's code, or the HTTP status of a refused key."""
    assert stack.client is not None
    response = await stack.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {key}"}
    )
    if response.status != 200:
        return str(response.status)
    answer = await response.json()
    return answer["errors"][0]["extensions"]["code"] if answer.get("errors") else "ok"


async def test_a_jobs_code_runs_with_a_key_of_its_own_that_writes_only_in_the_jobs_entity_and_ends_with_it(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg.projections import identity

    monkeypatch.setattr(identity, "CANCELLED_JOB_KEY_GRACE_S", 1.0)  # a cancelled job's key lives on to flush its runs
    url, agent_key, repo, commit = await _setup(stack, tmp_path)
    source = {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": ["python", "record.py"]}
    keys, ledger = tmp_path / "keys.txt", tmp_path / "ledger.txt"
    config = {"ledger": str(ledger), "keys": str(keys), "sleep": 600}
    job_id = (await stack.graphql(ENQUEUE, {"s": source, "c": config}))["data"]["enqueueJob"]["id"]

    async with agents(url, agent_key):
        await wait_until(lambda: _state_is(stack, job_id, "RUNNING"), timeout_s=60)
        await wait_until(lambda: asyncio.to_thread(lambda: keys.exists() and keys.read_text().endswith("\n")))
        job_key = keys.read_text().strip()
        assert job_key.startswith("mr_") and job_key != agent_key

        # The agent's key may write in any entity; the job's only in its own.
        assert await _answer_to(stack, job_key, START_RUN, {"e": "acme", "r": "by-the-job"}) == "ok"
        assert await _answer_to(stack, agent_key, START_RUN, {"e": "other", "r": "by-the-agent"}) == "ok"
        assert await _answer_to(stack, job_key, START_RUN, {"e": "other", "r": "by-the-job"}) == "FORBIDDEN"
        # Nor does it act as its agent: it claims no job, not even one of its own entity.
        another = (await stack.graphql(ENQUEUE, {"s": source, "c": config, "p": -5}))["data"]["enqueueJob"]["id"]
        claim = "mutation($id: ID!, $a: String!) { claimJob(input: {id: $id, agentId: $a}) { attempt } }"
        assert await _answer_to(stack, job_key, claim, {"id": another, "a": "service:agent:x"}) == "FORBIDDEN"

        await stack.graphql("mutation($id: ID!) { cancelJob(input: {id: $id}) { state } }", {"id": another})
        await stack.graphql("mutation($id: ID!) { cancelJob(input: {id: $id}) { state } }", {"id": job_id})
        await wait_until(lambda: _state_is(stack, job_id, "CANCELLED"), timeout_s=30)

    assert await _answer_to(stack, job_key, START_RUN, {"e": "acme", "r": "after-the-job"}) in ("FORBIDDEN", "401")
    await wait_until(lambda: _answer_is(stack, job_key, "401"), timeout_s=15)
    issued = await stack.graphql('{ auditLog(action: "launch.job_claimed") { items { details } } }')
    (details,) = [item["details"] for item in issued["data"]["auditLog"]["items"]]
    assert details["key_scopes"] == ["entity:acme", "registry"] and "key_sha256" not in details


async def _answer_is(stack: Stack, key: str, answer: str) -> bool:
    return await _answer_to(stack, key, START_RUN, {"e": "acme", "r": "after-the-job"}) == answer


async def _state_is(stack: Stack, job_id: str, state: str) -> bool:
    return (await _job(stack, job_id))["state"] == state


async def test_an_automation_fired_again_after_a_crash_enqueues_its_job_once(stack: Stack, tmp_path: Path) -> None:
    from modelreg.services.automations.runner import AutomationRunner
    from modelreg.services.http.api import APP, SECRETS

    url, _, repo, commit = await _setup(stack, tmp_path)
    action = {
        "kind": "launch",
        "queue": "cpu",
        "entity": "acme",
        "project": "nature",
        "source": {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": ["python", "train.py"]},
    }
    created = await stack.graphql(
        CREATE_AUTOMATION, {"n": "retrain", "t": {"event": "artifact_version_logged"}, "a": action}
    )
    automation_id = created["data"]["createAutomation"]["automation"]["id"]
    data_folder = tmp_path / "data"
    data_folder.mkdir()
    await asyncio.to_thread(_log_dataset, url, data_folder, 2)

    async def enqueued() -> list[dict[str, Any]]:
        return (
            await stack.graphql(
                "query($id: ID!) { automation(id: $id) { firings { items { eventId status jobId } } } }",
                {"id": automation_id},
            )
        )["data"]["automation"]["firings"]["items"]

    await wait_until(lambda: _firing_closed(enqueued), timeout_s=30)
    (firing,) = await enqueued()

    # A trigger consumer that died after enqueueing but before recording the firing does it again on restart.
    assert stack.client is not None
    app = stack.client.server.app
    restarted = AutomationRunner(app[APP], app[SECRETS])
    row = await restarted.launch.firings(UUID(automation_id), 10)
    await restarted.fire({**row[0], "status": "pending"})
    await restarted.fire({**row[0], "status": "pending"})

    jobs = [j for j in (await stack.graphql(JOBS))["data"]["launchJobs"]["items"] if j["triggeredBy"]]
    assert [j["id"] for j in jobs] == [firing["jobId"]]


async def test_an_automation_launches_with_its_creators_rights_as_they_are_when_it_fires(stack: Stack) -> None:
    from support.story import LOG_VERSION, version_input

    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    member = await stack.key("user:mia", role="member")
    action = {
        "kind": "launch",
        "queue": "cpu",
        "entity": "${entity}",
        "project": "${project}",  # from the event
        "source": {
            "kind": "git",
            "git_remote": "https://example.com/x.git",
            "git_commit": "0" * 40,
            "entry_point": ["python", "x.py"],
        },
    }
    created = await stack.graphql(
        CREATE_AUTOMATION, {"n": "evaluate", "t": {"event": "artifact_version_logged"}, "a": action}, key=member
    )
    automation_id = created["data"]["createAutomation"]["automation"]["id"]
    granted = await stack.graphql(
        'mutation { grantRole(input: {principal: "user:mia", scope: "entity:secret", role: VIEWER}) { role } }'
    )
    assert "errors" not in granted, granted

    await stack.graphql(LOG_VERSION, {"input": {**version_input("weights", b"a"), "entity": "secret"}})
    await stack.graphql(LOG_VERSION, {"input": version_input("weights", b"b")})  # entity acme

    async def firings() -> list[dict[str, Any]]:
        answer = await stack.graphql(
            "query($id: ID!) { automation(id: $id) { firings { items { status detail jobId } } } }",
            {"id": automation_id},
        )
        return answer["data"]["automation"]["firings"]["items"]

    async def both_closed() -> bool:
        return sorted(f["status"] for f in await firings()) == ["ENQUEUED", "FAILED"]

    await wait_until(both_closed, timeout_s=30)
    failed = next(f for f in await firings() if f["status"] == "FAILED")
    assert failed["jobId"] is None and "creator's rights" in failed["detail"] and "entity:secret" in failed["detail"]
    jobs = (await stack.graphql("{ launchJobs { items { entity triggeredBy } } }"))["data"]["launchJobs"]["items"]
    assert [j["entity"] for j in jobs] == ["acme"]


async def test_a_firing_of_an_automation_whose_creator_holds_no_live_key_says_so(stack: Stack) -> None:
    # Recorded as "user:erin may not read entity:alpha" while her grant on alpha was there: the cause, that she held
    # no live key, was not said.
    from support.story import LOG_VERSION, version_input

    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    await stack.graphql('mutation { setVisibility(input: {scope: "entity:alpha", visibility: PRIVATE}) { scope } }')
    granted = await stack.graphql(
        'mutation { grantRole(input: {principal: "user:erin", scope: "entity:alpha", role: MEMBER}) { role } }'
    )
    assert "errors" not in granted, granted
    issue = 'mutation { issueApiKey(input: {principalKind: USER, principalId: "erin", role: MEMBER}) { key id } }'
    erin = (await stack.graphql(issue))["data"]["issueApiKey"]
    source = {
        "kind": "git",
        "git_remote": "https://example.com/x.git",
        "git_commit": "0" * 40,
        "entry_point": ["python", "x.py"],
    }
    automations = {}
    for entity in ("alpha", "acme"):  # a private team, where her grant stays; a public one
        action = {"kind": "launch", "queue": "cpu", "entity": entity, "project": "p", "source": source}
        trigger = {"event": "artifact_version_logged", "entity": entity}
        created = await stack.graphql(CREATE_AUTOMATION, {"n": entity, "t": trigger, "a": action}, key=erin["key"])
        automations[entity] = created["data"]["createAutomation"]["automation"]["id"]
    revoked = await stack.graphql("mutation($id: ID!) { revokeApiKey(input: {keyId: $id}) { id } }", {"id": erin["id"]})
    assert "errors" not in revoked, revoked

    for entity in automations:
        await stack.graphql(LOG_VERSION, {"input": {**version_input("weights", b"w"), "entity": entity}})

    async def firings(automation_id: str) -> list[dict[str, Any]]:
        answer = await stack.graphql(
            "query($id: ID!) { automation(id: $id) { firings { items { status detail } } } }", {"id": automation_id}
        )
        return answer["data"]["automation"]["firings"]["items"]

    async def both_failed() -> bool:
        statuses = [[f["status"] for f in await firings(a)] for a in automations.values()]
        return statuses == [["FAILED"], ["FAILED"]]

    await wait_until(both_failed, timeout_s=30)
    for entity, automation_id in automations.items():
        [firing] = await firings(automation_id)
        assert "user:erin, its creator, holds no live key" in firing["detail"], entity
        assert "issue user:erin a key (issueApiKey)" in firing["detail"] and "may not read" not in firing["detail"]
    assert (await firings(automations["alpha"]))[0]["detail"].startswith("not carried out")
    assert (await firings(automations["acme"]))[0]["detail"].startswith("not enqueued")


async def _firing_closed(firings: Any) -> bool:
    found = await firings()
    return bool(found) and found[0]["status"] == "ENQUEUED"


async def test_a_new_member_of_a_queue_cannot_create_it_and_a_job_for_a_missing_queue_is_refused(stack: Stack) -> None:
    member = await stack.key("user:mia", role="member")
    refused = await stack.graphql(CREATE_QUEUE, {"n": "gpu"}, key=member)
    missing = await stack.graphql(ENQUEUE, {"r": "nope"})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (
        missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        and "createLaunchQueue" in missing["errors"][0]["message"]
    )


async def test_a_member_cannot_automate_jobs_in_an_entity_where_they_only_view(stack: Stack) -> None:
    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    member = await stack.key("user:mia", role="member")
    granted = await stack.graphql(
        'mutation { grantRole(input: {principal: "user:mia", scope: "entity:secret", role: VIEWER}) { role } }'
    )
    assert "errors" not in granted, granted
    action = {
        "kind": "launch",
        "queue": "cpu",
        "entity": "secret",
        "project": "p",
        "source": {
            "kind": "git",
            "git_remote": "https://example.com/x.git",
            "git_commit": "0" * 40,
            "entry_point": ["python", "x.py"],
        },
    }
    trigger = {"event": "artifact_version_logged"}
    refused = await stack.graphql(CREATE_AUTOMATION, {"n": "sneak", "t": trigger, "a": action}, key=member)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN", refused
    assert "entity:secret" in refused["errors"][0]["message"] or "secret" in refused["errors"][0]["message"]
    allowed = await stack.graphql(
        CREATE_AUTOMATION, {"n": "mine", "t": trigger, "a": {**action, "entity": "acme"}}, key=member
    )
    assert "errors" not in allowed, allowed
    assert [
        a["name"] for a in (await stack.graphql("{ automations { items { name } } }"))["data"]["automations"]["items"]
    ] == ["mine"]
    # Nor switch one back on: an admin's automation for that entity, disabled, stays off for the member.
    admins = await stack.graphql(CREATE_AUTOMATION, {"n": "admins'", "t": trigger, "a": action})
    theirs = admins["data"]["createAutomation"]["automation"]["id"]
    switch = "mutation($id: ID!, $on: Boolean!) { setAutomationEnabled(input: {id: $id, enabled: $on}) { enabled } }"
    assert "errors" not in await stack.graphql(switch, {"id": theirs, "on": False})
    reenabled = await stack.graphql(switch, {"id": theirs, "on": True}, key=member)
    assert reenabled["errors"][0]["extensions"]["code"] == "FORBIDDEN", reenabled


async def test_queues_and_automations_are_managed_from_the_command_line_too(stack: Stack, tmp_path: Path) -> None:
    cli = await command_line(stack)
    spec = tmp_path / "retrain.yaml"
    spec.write_text(
        "name: retrain on new data\n"
        "trigger: {event: artifact_version_logged, collection: fresh-data}\n"
        "action:\n"
        "  kind: launch\n  queue: gpu\n  entity: acme\n  project: nature\n"
        "  source: {kind: git, git_remote: 'https://git.example.com/nature.git', entry_point: [python, train.py]}\n"
        "  config: {dataset: '${artifact_ref}'}\n"
        "cooldown_s: 600\n"
    )

    assert "queue gpu (kubernetes) created" in await cli("queue", "create", "gpu", "--resource", "kubernetes")
    created = await cli("automation", "create", str(spec))
    automation_id = created.split()[1]
    spec.write_text(spec.read_text().replace("name: retrain on new data", "name: retrain on fresh data"))
    changed = await cli("automation", "change", automation_id, str(spec))
    assert changed == f"automation {automation_id} (retrain on fresh data) changed\n"
    assert "disabled" in await cli("automation", "disable", automation_id)
    listed = await cli("automation", "list")
    assert (
        f"{automation_id}  disabled  retrain on fresh data  on artifact_version_logged in=fresh-data "
        "-> launch queue=gpu in=acme/nature"
    ) in listed
    # A model misspelt is taken (an automation may be set up before its model), with a warning on stderr.
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        spec.read_text().replace(
            "trigger: {event: artifact_version_logged, collection: fresh-data}",
            "trigger: {event: alias_added, registered_model: nature-clasification, alias_pattern: candidate}",
        )
    )
    created, warned = await cli.with_warnings("automation", "create", str(typo))
    assert warned == (
        "warning: no registered model nature-clasification exists yet: this automation fires once one is created "
        "with that name (check its spelling)\n"
    )
    typo_id = created.split()[1]
    assert (
        f"{typo_id}  enabled   retrain on fresh data  on alias_added model=nature-clasification alias~candidate "
        "-> launch queue=gpu in=acme/nature"
    ) in await cli("automation", "list")
    # A name holding a terminal sequence (OSC 52 writes the reader's clipboard) is listed as its escape.
    sly = tmp_path / "sly.yaml"
    sly.write_text(spec.read_text().replace("name: retrain on fresh data", 'name: "retrain \\e]52;c;aGk=\\a now"'))
    sly_id = (await cli("automation", "create", str(sly))).split()[1]
    listed = await cli("automation", "list")
    assert f"{sly_id}  enabled   retrain \\u001b]52;c;aGk=\\u0007 now" in listed and "\x1b" not in listed
    assert "deleted" in await cli("automation", "delete", sly_id)
    assert "deleted" in await cli("automation", "delete", typo_id)
    assert await cli("automation", "delete", automation_id) == "automation retrain on fresh data deleted\n"
    assert automation_id not in await cli("automation", "list")
    # Nothing waits in the queue and no automation launches into it any more: it may go.
    assert await cli("queue", "delete", "gpu") == "queue gpu deleted\n"
    assert "gpu" not in await cli("queue", "list")

    audit = await stack.graphql(
        "query($s: String!) { auditLog(stream: $s) { items { action actor } } }", {"s": f"automation:{automation_id}"}
    )
    assert [(r["action"], r["actor"]) for r in audit["data"]["auditLog"]["items"]] == [
        ("automations.automation_deleted", "user:ada"),
        ("automations.automation_disabled", "user:ada"),
        ("automations.automation_changed", "user:ada"),
        ("automations.automation_created", "user:ada"),
    ]


async def test_a_job_is_followed_cancelled_and_run_again_from_the_command_line(stack: Stack, tmp_path: Path) -> None:
    url, key, repo, commit = await _setup(stack, tmp_path)
    cli = await command_line(stack)

    source = {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": ["python", "record.py"]}
    config = {"ledger": str(tmp_path / "ledger.txt")}
    ran = (await stack.graphql(ENQUEUE, {"s": source, "c": config}))["data"]["enqueueJob"]["id"]
    async with agents(url, key):
        followed = await cli("job", "logs", ran, "--follow")  # returns once the job ends
    assert followed == f"recorded {ran}\n"
    shown = await cli("job", "show", ran)
    assert shown.startswith(f"job {ran}  finished\n") and "  exit status 0\n" in shown

    waiting = (await stack.graphql(ENQUEUE, {"s": source, "c": config}))["data"]["enqueueJob"]["id"]
    assert await cli("job", "list", "--state", "queued") == (
        f"{waiting}  queued     cpu  acme/nature  by user:alice at "
        + (await stack.graphql(f'{{ launchJob(id: "{waiting}") {{ enqueuedAt }} }}'))["data"]["launchJob"]["enqueuedAt"]
        + "\n"
    )
    assert await cli("job", "cancel", waiting, "--reason", "wrong data") == f"job {waiting} cancelled\n"
    assert (await _job(stack, waiting))["reason"] == "wrong data"
    retried = (await cli("job", "retry", waiting)).split()[1]
    again = await stack.graphql("query($id: ID!) { launchJob(id: $id) { state retryOf config } }", {"id": retried})
    assert again["data"]["launchJob"] == {"state": "QUEUED", "retryOf": waiting, "config": config}
    assert await cli("queue", "list") == "cpu  local-process  takes every entity's jobs\n"


async def test_a_running_job_that_is_cancelled_is_asked_to_stop_by_its_agent(stack: Stack, tmp_path: Path) -> None:
    url, key, repo, commit = await _setup(stack, tmp_path)
    ledger, farewell = tmp_path / "ledger.txt", tmp_path / "farewell.txt"
    source = {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": ["python", "record.py"]}
    config = {"ledger": str(ledger), "sleep": 8, "farewell": str(farewell)}
    job_id = (await stack.graphql(ENQUEUE, {"s": source, "c": config}))["data"]["enqueueJob"]["id"]

    async with agents(url, key):
        await wait_until(lambda: _state_is(stack, job_id, "RUNNING"), timeout_s=60)
        cancelled = await stack.graphql(
            'mutation($id: ID!) { cancelJob(input: {id: $id, reason: "wrong data"}) { state reason } }', {"id": job_id}
        )
        assert cancelled["data"]["cancelJob"] == {"state": "CANCELLED", "reason": "wrong data"}
        # Once its process is gone, the job can write nothing more (it would have written at 8 s).
        pid = await _pid_of(stack, job_id)
        await wait_until(lambda: _process_ended(pid), timeout_s=30)

    assert not ledger.exists()  # stopped before it wrote anything
    # Asked first (SIGTERM), as `docker stop` asks: a job finishes its run or saves a checkpoint before it goes.
    assert farewell.read_text() == "asked to stop"
    assert (await _job(stack, job_id))["state"] == "CANCELLED"


async def test_a_job_past_its_time_limit_is_stopped_by_its_agent_and_failed_saying_so(
    stack: Stack, tmp_path: Path
) -> None:
    url, key, repo, commit = await _setup(stack, tmp_path)
    ledger, farewell = tmp_path / "ledger.txt", tmp_path / "farewell.txt"
    source = {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": ["python", "record.py"]}
    config = {"ledger": str(ledger), "sleep": 600, "farewell": str(farewell)}  # a hung evaluation
    enqueue = """mutation($s: GenericScalar, $c: GenericScalar) { enqueueJob(input: {queue: "cpu", entity: "acme",
      project: "nature", source: $s, config: $c, timeLimitS: 3}) { id timeLimitS } }"""
    job_id = (await stack.graphql(enqueue, {"s": source, "c": config}))["data"]["enqueueJob"]["id"]
    waiting = (await stack.graphql(enqueue, {"s": source, "c": {**config, "sleep": 0}}))["data"]["enqueueJob"]["id"]

    async with agents(url, key):  # one job at a time: the hung one held it up for good
        await wait_until(lambda: _finished(stack, waiting), timeout_s=90)

    job = await _job(stack, job_id)
    assert (job["state"], job["attempt"]) == ("FAILED", 1)
    assert job["reason"] == "ran past its time limit of 3 s: stopped (SIGTERM, then SIGKILL 10 s later)"
    assert farewell.read_text() == "asked to stop"  # asked first, as a cancel asks
    assert "saving a checkpoint" in "".join(chunk["text"] for chunk in job["output"]["items"])
    assert ledger.read_text().splitlines() == [waiting]
    assert (await _job(stack, waiting))["state"] == "FINISHED"


async def test_a_stopped_agent_gives_its_running_job_back_at_once_and_another_agent_runs_it(
    stack: Stack, tmp_path: Path
) -> None:
    # A redeploy: the job went on as running until the supervisor's timeout, then started again from scratch.
    url, key, repo, commit = await _setup(stack, tmp_path)
    ledger, farewell, keys = tmp_path / "ledger.txt", tmp_path / "farewell.txt", tmp_path / "keys.txt"
    source = {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": ["python", "record.py"]}
    config = {"ledger": str(ledger), "sleep": 6, "farewell": str(farewell), "keys": str(keys)}
    job_id = (await stack.graphql(ENQUEUE, {"s": source, "c": config}))["data"]["enqueueJob"]["id"]

    async with agents(url, key) as (stopped,):
        # Once the job has written its key, it listens for SIGTERM.
        await wait_until(lambda: asyncio.to_thread(lambda: keys.exists() and keys.read_text().endswith("\n")))
        stopped.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(stopped.wait, 30) == 0
    given_back = await _job(stack, job_id)  # as the agent exits, not after the supervisor's timeout
    assert (given_back["state"], given_back["attempt"], given_back["agentId"]) == ("QUEUED", 1, None)
    assert given_back["reason"].endswith(
        "was stopped while it ran attempt 1, which it stopped (SIGTERM, then SIGKILL 10 s later): requeued"
    )
    assert farewell.read_text() == "asked to stop"

    async with agents(url, key):
        await wait_until(lambda: _finished(stack, job_id), timeout_s=60)
    job = await _job(stack, job_id)
    assert (job["state"], job["attempt"], job["requeues"]) == ("FINISHED", 2, 1)
    assert ledger.read_text().splitlines() == [job_id]


async def test_an_agent_stopped_with_a_drain_lets_its_running_job_finish_and_takes_no_other(
    stack: Stack, tmp_path: Path
) -> None:
    url, key, repo, commit = await _setup(stack, tmp_path)
    ledger = tmp_path / "ledger.txt"
    source = {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": ["python", "record.py"]}
    running = (await stack.graphql(ENQUEUE, {"s": source, "c": {"ledger": str(ledger), "sleep": 4}}))["data"]
    async with agents(url, key, options=("--drain", "2m")) as (draining,):
        await wait_until(lambda: _state_is(stack, running["enqueueJob"]["id"], "RUNNING"), timeout_s=60)
        waiting = (await stack.graphql(ENQUEUE, {"s": source, "c": {"ledger": str(ledger)}}))["data"]
        draining.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(draining.wait, 60) == 0

    finished = await _job(stack, running["enqueueJob"]["id"])
    assert (finished["state"], finished["attempt"], finished["requeues"]) == ("FINISHED", 1, 0)
    assert (await _job(stack, waiting["enqueueJob"]["id"]))["state"] == "QUEUED"
    assert ledger.read_text().splitlines() == [running["enqueueJob"]["id"]]


async def _pid_of(stack: Stack, job_id: str) -> int:
    """The job's process, as its agent reported it (a read-model column the API does not serve)."""
    from modelreg.projections.launch_queries import LaunchQueries
    from modelreg.services.http.api import APP

    assert stack.client is not None
    job = await LaunchQueries(stack.client.server.app[APP].reads.pool).job(UUID(job_id))
    assert job is not None and job["pid"] is not None, job
    return job["pid"]


async def _process_ended(pid: int) -> bool:
    """Gone, or a zombie: killed, and not yet reaped by its parent (the agent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


@pytest.mark.parametrize("log_kind", LOGS)
async def test_a_trigger_consumer_killed_while_firing_enqueues_each_job_once_after_its_restart(
    settings: Any, tmp_path: Path
) -> None:
    """`modelreg triggers` as a real process, SIGKILLed while it carries out 120 firings, then started again."""
    async with Stack(settings, with_triggers=False) as stack:
        url, _, repo, commit = await _setup(stack, tmp_path)
        action = {
            "kind": "launch",
            "queue": "cpu",
            "entity": "acme",
            "project": "nature",
            "source": {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": ["python", "train.py"]},
            "config": {"dataset": "${artifact_ref}"},
        }
        trigger = {"event": "artifact_version_logged", "collection": "fresh-data"}
        created = await stack.graphql(CREATE_AUTOMATION, {"n": "retrain", "t": trigger, "a": action})
        automation_id = created["data"]["createAutomation"]["automation"]["id"]
        for n in range(FIRINGS):
            await stack.graphql(
                LOG_DATASET,
                {
                    "i": {
                        "entity": "acme",
                        "project": "nature",
                        "name": "fresh-data",
                        "type": "dataset",
                        "files": [file_entry("d.csv", b"x" * n)],
                    }
                },
            )
        command = [
            sys.executable,
            "-m",
            "modelreg.services.cli",
            "triggers",
            "--database-url",
            settings.database_url,
            "--topic",
            settings.topic,
        ]
        if settings.kafka_bootstrap_servers:
            command += ["--kafka", settings.kafka_bootstrap_servers]

        async def enqueued() -> int:
            return len([j for j in (await stack.graphql(JOBS))["data"]["launchJobs"]["items"] if j["triggeredBy"]])

        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_until(lambda: _at_least(enqueued, 1), timeout_s=60, every_s=0.01)
        finally:
            first.send_signal(signal.SIGKILL)  # in the middle of the firings (or at once, when the wait failed)
            await asyncio.to_thread(first.wait, 30)
        assert await enqueued() < FIRINGS
        second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_until(lambda: _at_least(enqueued, FIRINGS), timeout_s=120)
            # A firing closes only after its job was enqueued, again or not: once none is pending, every
            # enqueue the restarted runner will ever make (a double one included) is on the log.
            await wait_until(lambda: _all_closed(stack, automation_id), timeout_s=60)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait, 30)
        await stack.projected()

        jobs = [j for j in (await stack.graphql(JOBS))["data"]["launchJobs"]["items"] if j["triggeredBy"]]
        assert len(jobs) == FIRINGS and len({j["triggeredBy"]["event_id"] for j in jobs}) == FIRINGS
        assert sorted(j["config"]["dataset"] for j in jobs) == sorted(
            f"acme/nature/fresh-data:v{n}" for n in range(FIRINGS)
        )


FIRINGS = 120
LOG_DATASET = "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id } }"


async def _at_least(count: Any, n: int) -> bool:
    return await count() >= n


async def _all_closed(stack: Stack, automation_id: str) -> bool:
    query = "query($id: ID!) { automation(id: $id) { firings(first: 500) { items { status } } } }"
    firings = (await stack.graphql(query, {"id": automation_id}))["data"]["automation"]["firings"]["items"]
    return len(firings) == FIRINGS and all(f["status"] != "PENDING" for f in firings)


async def _every_page(stack: Stack, query: str, field: str, variables: dict[str, Any]) -> list[list[str]]:
    """The ids of each page of `field`, one page at a time until it says there is no next one."""
    pages, after = [], None
    while True:
        page = (await stack.graphql(query, {**variables, "after": after}))["data"][field]
        pages.append([item["id"] for item in page["items"]])
        if not page["hasNextPage"]:
            return pages
        after = page["endCursor"]


async def test_jobs_queues_and_automations_come_a_page_at_a_time_each_once(stack: Stack) -> None:
    for name in ("cpu", "gpu", "tpu"):
        await stack.graphql(CREATE_QUEUE, {"n": name})
    source = {"kind": "git", "git_remote": "https://example.com/x.git", "git_commit": "0" * 40, "entry_point": ["x"]}
    enqueued = [
        (await stack.graphql(ENQUEUE, {"s": source, "p": priority}))["data"]["enqueueJob"]["id"]
        for priority in (0, 5, 0, 5, 1)
    ]
    low_first, high_first, low_second, high_second, middle = enqueued
    by_priority = [high_first, high_second, middle, low_first, low_second]  # then oldest first

    waiting = (
        'query($after: String) { waitingJobs(queues: ["cpu"], first: 2, after: $after) '
        "{ items { id } endCursor hasNextPage } }"
    )
    assert await _every_page(stack, waiting, "waitingJobs", {}) == [by_priority[:2], by_priority[2:4], by_priority[4:]]
    queued = """query($after: String) { launchJobs(state: QUEUED, first: 3, after: $after) {
      items { id } endCursor hasNextPage } }"""
    assert await _every_page(stack, queued, "launchJobs", {}) == [by_priority[:3], by_priority[3:]]
    newest = "query($after: String) { launchJobs(first: 2, after: $after) { items { id } endCursor hasNextPage } }"
    assert await _every_page(stack, newest, "launchJobs", {}) == [enqueued[:2:-1], enqueued[2:0:-1], enqueued[:1]]

    queues = (
        "query($after: String) { launchQueues(first: 2, after: $after) { items { id: name } endCursor hasNextPage } }"
    )
    assert await _every_page(stack, queues, "launchQueues", {}) == [["cpu", "gpu"], ["tpu"]]
    action = {"kind": "launch", "queue": "cpu", "entity": "acme", "project": "nature", "source": source}
    created = [
        (await stack.graphql(CREATE_AUTOMATION, {"n": name, "t": {"event": "alias_added"}, "a": action}))["data"][
            "createAutomation"
        ]["automation"]["id"]
        for name in ("one", "two", "three")
    ]
    automations = (
        "query($after: String) { automations(first: 2, after: $after) { items { id } endCursor hasNextPage } }"
    )
    assert await _every_page(stack, automations, "automations", {}) == [created[:2], created[2:]]
    foreign = await stack.graphql(
        newest, {"after": (await stack.graphql(queues, {}))["data"]["launchQueues"]["endCursor"]}
    )
    assert foreign["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_a_trigger_pattern_postgresql_cannot_run_is_refused_and_one_stored_earlier_parks_no_stream(
    stack: Stack,
) -> None:
    import asyncpg
    from support.story import LINK, LOG_VERSION, version_input

    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    source = {"kind": "git", "git_remote": "https://x.io/r.git", "git_commit": "0" * 40, "entry_point": ["x"]}
    action = {"kind": "launch", "queue": "cpu", "entity": "acme", "project": "nature", "source": source}
    refused = await stack.graphql(
        CREATE_AUTOMATION, {"n": "prod", "t": {"event": "alias_added", "alias_pattern": "(?i)prod"}, "a": action}
    )
    error = refused["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT" and "PostgreSQL" in error["message"], error

    # One an older modelreg let through (Python's `re` compiled it): it matches nothing, and aliases still apply.
    created = await stack.graphql(
        CREATE_AUTOMATION, {"n": "prod", "t": {"event": "alias_added", "alias_pattern": "prod"}, "a": action}
    )
    automation_id = created["data"]["createAutomation"]["automation"]["id"]
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        await conn.execute(
            """UPDATE automations SET trigger = jsonb_set(trigger, '{alias_pattern}', '"(?i)prod"')
               WHERE automation_id = $1""",
            UUID(automation_id),
        )
        logged = await stack.graphql(LOG_VERSION, {"input": version_input("weights", b"w")})
        version = logged["data"]["logArtifactVersion"]["id"]
        linked = await stack.graphql(LINK, {"model": "classifier", "id": version, "aliases": ["prod"]})
        assert "errors" not in linked, linked
        assert await conn.fetchval("SELECT count(*) FROM parked_streams") == 0

        # One that refers back to a group: refused at the door; stored earlier, it matches nothing at once (it
        # took 45 s on this 40-character alias, every projection of the process waiting).
        backtracking = "(.*)(.*)(.*)(.*)(.*)(.*)(.*)(.*)\\8\\7\\6\\5\\4\\3\\2\\1x"
        refused = await stack.graphql(
            CREATE_AUTOMATION, {"n": "slow", "t": {"event": "alias_added", "alias_pattern": backtracking}, "a": action}
        )
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT", refused
        await conn.execute(
            "UPDATE automations SET trigger = jsonb_set(trigger, '{alias_pattern}', to_jsonb($2::text)) "
            "WHERE automation_id = $1",
            UUID(automation_id),
            backtracking,
        )
        assert await conn.fetchval("SELECT modelreg_whole_match($1, $2)", "a" * 39 + "x", backtracking) is False
        assert await conn.fetchval("SELECT modelreg_whole_match($1, $2)", "v\\12", "v\\\\1[0-9]") is True
        linked = await stack.graphql(LINK, {"model": "classifier", "id": version, "aliases": ["a" * 39 + "x"]})
        assert "errors" not in linked, linked
    finally:
        await conn.close()


async def test_a_firing_whose_job_is_refused_is_recorded_failed_and_holds_up_no_other(stack: Stack) -> None:
    from support.story import LOG_VERSION, version_input

    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    source = {
        "kind": "git",
        "git_remote": "https://example.com/x.git",
        "git_commit": "0" * 40,
        "entry_point": ["python", "x.py"],
    }
    ids = {}
    for name, project in (("poisoned", "${project} !"), ("evaluate", "${project}")):
        action = {"kind": "launch", "queue": "cpu", "entity": "acme", "project": project, "source": source}
        created = await stack.graphql(
            CREATE_AUTOMATION, {"n": name, "t": {"event": "artifact_version_logged"}, "a": action}
        )
        ids[name] = created["data"]["createAutomation"]["automation"]["id"]

    await stack.graphql(LOG_VERSION, {"input": version_input("weights", b"a")})

    async def firings(name: str) -> list[dict[str, Any]]:
        answer = await stack.graphql(
            "query($id: ID!) { automation(id: $id) { firings { items { status detail jobId } } } }",
            {"id": ids[name]},
        )
        return answer["data"]["automation"]["firings"]["items"]

    async def both_closed() -> bool:
        return [f["status"] for f in await firings("poisoned") + await firings("evaluate")] == ["FAILED", "ENQUEUED"]

    await wait_until(both_closed, timeout_s=30)
    [failed] = await firings("poisoned")
    assert failed["jobId"] is None and failed["detail"].startswith("not enqueued: project")


async def test_a_kubernetes_jobs_manifest_takes_its_attempts_key_from_a_secret_of_its_own(stack: Stack) -> None:
    assert stack.client is not None
    url, key = str(stack.client.make_url("/")).rstrip("/"), await stack.key("service:agent", role="member")
    await stack.graphql(
        'mutation { createLaunchQueue(input: {name: "cpu", resource: KUBERNETES, resourceConfig: {namespace: "ml"}})'
        " { name } }"
    )
    image = {"kind": "image", "image": "python:3.12", "entry_point": ["python", "train.py"]}
    job_id = (await stack.graphql(ENQUEUE, {"s": image}))["data"]["enqueueJob"]["id"]

    async with agents(url, key):
        await wait_until(lambda: _state_is(stack, job_id, "FAILED"), timeout_s=60)  # no cluster answers here

    detail = (await stack.graphql("query($id: ID!) { launchJob(id: $id) { detail } }", {"id": job_id}))["data"]
    secret, job = yaml.safe_load_all(detail["launchJob"]["detail"])
    assert (secret["kind"], job["kind"]) == ("Secret", "Job")
    assert secret["stringData"] == {"api-key": "<the attempt's API key: submitted, never recorded>"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    (key_from,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == "MODELREG_API_KEY"]
    assert key_from["name"] == secret["metadata"]["name"] and secret["metadata"]["namespace"] == "ml"
    assert "mr_" not in detail["launchJob"]["detail"]


async def test_an_agent_where_docker_does_not_run_leaves_a_docker_queues_jobs_for_another(
    stack: Stack, tmp_path: Path
) -> None:
    # It claimed them and failed each one, every job of the queue in turn, until an agent with Docker polled it.
    if docker_answers() is None:
        pytest.skip("a Docker engine answers here: this is about an agent where none does")
    url, key, repo, commit = await _setup(stack, tmp_path)
    await stack.graphql('mutation { createLaunchQueue(input: {name: "containers", resource: DOCKER}) { name } }')
    image = {"kind": "image", "image": "ghcr.io/acme/eval:1", "entry_point": ["python", "eval.py"]}
    enqueue = ENQUEUE.replace('queue: "cpu"', 'queue: "containers"')
    in_docker = (await stack.graphql(enqueue, {"s": image}))["data"]["enqueueJob"]["id"]
    (here,) = await _enqueue_records(stack, repo, commit, tmp_path / "ledger.txt", 1)

    async with agents(url, key, queues=("containers", "cpu")):
        await wait_until(lambda: _finished(stack, here), timeout_s=60)

    assert (await _job(stack, in_docker))["state"] == "QUEUED"


async def test_an_automation_does_not_fire_on_what_a_job_it_launched_did(stack: Stack, tmp_path: Path) -> None:
    # "Evaluate every finished run" launches a job whose own run finishes: it fired again, for ever (a retraining
    # job that moves `production` does the same to an automation on `production`). A job's events are correlated
    # by the job, and an automation does not fire on what its own jobs did.
    url, key, repo, commit = await _setup(stack, tmp_path)
    action = {
        "kind": "launch",
        "queue": "cpu",
        "entity": "acme",
        "project": "nature",
        "source": {
            "kind": "git",
            "git_remote": repo,
            "git_commit": commit,
            "entry_point": ["python", "-c", "import modelreg; modelreg.init().finish()"],
        },
    }
    created = await stack.graphql(
        CREATE_AUTOMATION, {"n": "evaluate", "t": {"event": "run_finished", "entity": "acme"}, "a": action}
    )
    automation_id = created["data"]["createAutomation"]["automation"]["id"]
    firings_query = "query($id: ID!) { automation(id: $id) { firings { items { status detail jobId } } } }"

    async def firings() -> list[dict[str, Any]]:
        return (await stack.graphql(firings_query, {"id": automation_id}))["data"]["automation"]["firings"]["items"]

    async def both_closed() -> bool:
        found = await firings()
        return len(found) == 2 and "PENDING" not in {f["status"] for f in found}

    await stack.graphql(START_RUN, {"e": "acme", "r": "by-hand"})
    finish = 'mutation { finishRun(input: {entity: "acme", project: "nature", runId: "by-hand"}) { state } }'
    await stack.graphql(finish)
    async with agents(url, key):
        await wait_until(both_closed, timeout_s=90)

    loop, launched = await firings()  # newest first
    assert launched["status"] == "ENQUEUED"
    assert loop["status"] == "FAILED" and f"job {launched['jobId']}, which this automation launched" in loop["detail"]
    jobs = [j for j in (await stack.graphql(JOBS))["data"]["launchJobs"]["items"] if j["triggeredBy"]]
    assert [j["id"] for j in jobs] == [launched["jobId"]]
    # The audit log tells what the job did from what people did.
    finished = '{ auditLog(action: "runs.run_finished") { items { actor correlationId details } } }'
    records = (await stack.graphql(finished))["data"]["auditLog"]["items"]
    by_job = [r["details"]["run_id"] for r in records if r["correlationId"] == launched["jobId"]]
    assert by_job == [f"launch-{launched['jobId'].replace('-', '')[-12:]}-1"]


async def test_an_automation_names_the_registered_models_own_version_beside_the_logged_artifacts(
    stack: Stack,
) -> None:
    # ${artifact_version} is the logged artifact's number (v0 of nature-classifier): a job given
    # model-registry/${registered_model}:${artifact_version} evaluated the registered model's v0, another model.
    from support.story import LINK, LOG_VERSION, version_input

    await stack.graphql('mutation { createLaunchQueue(input: {name: "cpu", resource: DOCKER}) { name } }')
    config = {
        "pinned": "${registered_model_ref}",
        "version": "${registered_model_version}",
        "logged_as": "${artifact_version}",
    }
    action = {"kind": "launch", "queue": "cpu", "entity": "acme", "project": "nature", "source": SOURCE_IMAGE}
    trigger = {"event": "alias_added", "registered_model": "nature-classification", "alias_pattern": "staging"}
    created = await stack.graphql(CREATE_AUTOMATION, {"n": "evaluate", "t": trigger, "a": {**action, "config": config}})
    assert "errors" not in created, created
    for n, collection in enumerate(["older-classifier"] * 3 + ["nature-classifier"]):
        logged = await stack.graphql(LOG_VERSION, {"input": version_input(collection, f"weights {n}".encode())})
        aliases = ["staging"] if collection == "nature-classifier" else []
        linked = await stack.graphql(
            LINK,
            {"model": "nature-classification", "id": logged["data"]["logArtifactVersion"]["id"], "aliases": aliases},
        )
        assert linked["data"]["linkArtifactVersion"]["version"] == f"v{n}"

    async def enqueued() -> list[dict[str, Any]]:
        return (await stack.graphql(JOBS))["data"]["launchJobs"]["items"]

    await wait_until(lambda: _some(enqueued), timeout_s=30)
    (job,) = await enqueued()
    assert job["config"] == {
        "pinned": "model-registry/nature-classification:v3",
        "version": "v3",
        "logged_as": "v0",
    }


async def _some(found: Any) -> bool:
    return bool(await found())


SOURCE_IMAGE = {"kind": "image", "image": "python:3.12", "entry_point": ["python", "evaluate.py"]}
