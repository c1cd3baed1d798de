"""Who may do what in Launch and automations: every mutation is checked on the entity of its job, queue or
automation (a grant there counts, both ways), and an agent acts only under its own key's agent ids.

One server for the whole matrix, on one log: the rules are the application's, the same on both logs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from support.command_line import command_line
from support.stack import Stack
from support.training_repo import make_training_repo
from support.waiting import wait_until

from modelreg.errors import ModelregError
from modelreg.events.envelope import Actor
from modelreg.projections.identity_queries import IdentityQueries
from modelreg.services.commands.access import Caller, service_caller
from modelreg.services.commands.commands import IssueApiKey
from modelreg.services.commands.launch_commands import ClaimJob, RequeueJob
from modelreg.services.http.api import APP, caller_of_key

pytestmark = pytest.mark.parametrize("log_kind", ["postgres"])

GRANT = (
    "mutation($p: String!, $s: String!, $r: Role!) { grantRole(input: {principal: $p, scope: $s, role: $r}) { role } }"
)
CREATE_QUEUE = "mutation($n: String!) { createLaunchQueue(input: {name: $n}) { name } }"
SOURCE = {
    "kind": "git",
    "git_remote": "https://example.com/x.git",
    "git_commit": "0" * 40,
    "entry_point": ["python", "x.py"],
}
ENQUEUE = """mutation($e: String!, $s: GenericScalar) {
  enqueueJob(input: {queue: "cpu", entity: $e, project: "nature", source: $s}) { id }
}"""
CLAIM = "mutation($id: ID!, $a: String!) { claimJob(input: {id: $id, agentId: $a}) { attempt } }"
STARTED = (
    "mutation($id: ID!, $a: String!) { reportJobStarted(input: {id: $id, agentId: $a, attempt: 1, pid: 7}) { state } }"
)
OUTPUT = """mutation($id: ID!, $a: String!) {
  captureJobOutput(input: {id: $id, agentId: $a, attempt: 1, stream: STDOUT, text: "hi"})
}"""
FINISHED = """mutation($id: ID!, $a: String!) {
  reportJobFinished(input: {id: $id, agentId: $a, attempt: 1, state: FINISHED}) { state }
}"""
CANCEL = "mutation($id: ID!) { cancelJob(input: {id: $id}) { state } }"
HEARTBEAT = 'mutation($a: String!) { agentHeartbeat(input: {agentId: $a, queues: ["cpu"]}) }'
CREATE_AUTOMATION = """mutation($a: GenericScalar!) {
  createAutomation(input: {name: "retrain", trigger: {event: "run_finished"}, action: $a}) { automation { id } }
}"""
SWITCH = "mutation($id: ID!, $on: Boolean!) { setAutomationEnabled(input: {id: $id, enabled: $on}) { enabled } }"
LAUNCH_IN_ACME = {"kind": "launch", "queue": "cpu", "entity": "acme", "project": "nature", "source": SOURCE}


@dataclass(frozen=True)
class Role:
    """A principal, the role of its key, and its grants: how it stands towards entity acme."""

    principal: str
    key_role: str
    grants: tuple[tuple[str, str], ...] = ()


ROLES = {
    "viewer": Role("user:vic", "viewer"),
    "member of another entity": Role("user:otto", "viewer", (("entity:other", "member"),)),
    "member key, viewer of acme": Role("user:mona", "member", (("entity:acme", "viewer"),)),
    "member of acme by grant": Role("user:gia", "viewer", (("entity:acme", "member"),)),
    "admin": Role("user:ada", "admin"),
}
ACME_MEMBERS = {"member of acme by grant", "admin"}
WRITERS = {"member of another entity", "member key, viewer of acme", "member of acme by grant", "admin"}

# Which roles may do each mutation on acme's job, queue or automation; everyone else gets FORBIDDEN.
MAY = {
    "createLaunchQueue": {"admin"},  # a queue serves every entity: the installation's admins make them
    "enqueueJob": ACME_MEMBERS,
    "claimJob": ACME_MEMBERS,
    "reportJobStarted": ACME_MEMBERS,
    "captureJobOutput": ACME_MEMBERS,
    "reportJobFinished": ACME_MEMBERS,
    "requeueJob": {"admin"},  # the supervisor's (no GraphQL mutation): admins of the job's entity
    "cancelJob": ACME_MEMBERS,
    "agentHeartbeat": WRITERS,  # for its own agent only, which moves no job
    "createAutomation": ACME_MEMBERS,
    "disableAutomation": ACME_MEMBERS,
    "enableAutomation": {"admin"},  # it acts with its creator's rights: its creator (an admin here) or an admin
}


class Matrix:
    """Runs one mutation as one role against fresh things of entity acme, made by an admin."""

    def __init__(self, stack: Stack, keys: dict[str, str]) -> None:
        self.stack = stack
        self.keys = keys
        self.queues = 0

    async def admin(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        answer = await self.stack.graphql(query, variables, actor="user:ada")
        assert "errors" not in answer, answer
        return answer["data"]

    async def job(self) -> str:
        return (await self.admin(ENQUEUE, {"e": "acme", "s": SOURCE}))["enqueueJob"]["id"]

    async def job_claimed_by(self, principal: str) -> str:
        """A job claimed by `principal`'s agent while it could (its rights are what the matrix then tests)."""
        job_id = await self.job()
        kind, _, ident = principal.partition(":")
        while_it_could = Caller(Actor(kind=kind, id=ident), "admin")  # type: ignore[arg-type]
        await self.app.execute(ClaimJob(job_id=UUID(job_id), agent_id=f"{principal}:a"), while_it_could)
        return job_id

    async def automation(self, enabled: bool) -> str:
        created = await self.admin(CREATE_AUTOMATION, {"a": LAUNCH_IN_ACME})
        automation_id = created["createAutomation"]["automation"]["id"]
        if not enabled:
            await self.admin(SWITCH, {"id": automation_id, "on": False})
        return automation_id

    @property
    def app(self) -> Any:
        assert self.stack.client is not None
        return self.stack.client.server.app[APP]

    async def as_role(self, role: str, query: str, variables: dict[str, Any]) -> str:
        answer = await self.stack.graphql(query, variables, key=self.keys[role])
        return answer["errors"][0]["extensions"]["code"] if answer.get("errors") else "ok"

    async def run(self, mutation: str, role: str) -> str:
        principal = ROLES[role].principal
        agent = f"{principal}:a"
        if mutation == "createLaunchQueue":
            self.queues += 1
            return await self.as_role(role, CREATE_QUEUE, {"n": f"q{self.queues}"})
        if mutation == "enqueueJob":
            return await self.as_role(role, ENQUEUE, {"e": "acme", "s": SOURCE})
        if mutation == "claimJob":
            return await self.as_role(role, CLAIM, {"id": await self.job(), "a": agent})
        reports = {"reportJobStarted": STARTED, "captureJobOutput": OUTPUT, "reportJobFinished": FINISHED}
        if mutation in reports:
            return await self.as_role(role, reports[mutation], {"id": await self.job_claimed_by(principal), "a": agent})
        if mutation == "requeueJob":
            job_id = await self.job_claimed_by("service:agent")
            caller = await caller_of_key(self.keys[role], IdentityQueries(self.app.reads.pool))
            try:
                await self.app.execute(RequeueJob(job_id=UUID(job_id), attempt=1, reason="matrix"), caller)
            except ModelregError as refused:
                return refused.code
            return "ok"
        if mutation == "cancelJob":
            return await self.as_role(role, CANCEL, {"id": await self.job()})
        if mutation == "agentHeartbeat":
            return await self.as_role(role, HEARTBEAT, {"a": agent})
        if mutation == "createAutomation":
            return await self.as_role(role, CREATE_AUTOMATION, {"a": LAUNCH_IN_ACME})
        if mutation in ("disableAutomation", "enableAutomation"):
            enable = mutation == "enableAutomation"
            return await self.as_role(role, SWITCH, {"id": await self.automation(enabled=not enable), "on": enable})
        raise AssertionError(f"no setup for {mutation}")


async def _keys(stack: Stack) -> dict[str, str]:
    keys = {}
    for name, role in ROLES.items():
        keys[name] = await stack.key(role.principal, role=role.key_role)
        for scope, granted in role.grants:
            answer = await stack.graphql(GRANT, {"p": role.principal, "s": scope, "r": granted.upper()})
            assert "errors" not in answer, answer
    return keys


async def _actions_of(stack: Stack, principal: str) -> Counter[str]:
    query = "query($a: String!) { auditLog(actor: $a, first: 500) { items { action } } }"
    answer = await stack.graphql(query, {"a": principal})
    return Counter(item["action"] for item in answer["data"]["auditLog"]["items"])


async def test_every_launch_and_automation_mutation_is_checked_on_the_entity_it_acts_in(stack: Stack) -> None:
    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    matrix = Matrix(stack, await _keys(stack))

    outcomes = {(mutation, role): await matrix.run(mutation, role) for mutation in MAY for role in ROLES}

    assert outcomes == {(m, r): "ok" if r in MAY[m] else "FORBIDDEN" for m in MAY for r in ROLES}
    # A refusal appends nothing: of those who may not act in acme, the log holds only the claims made for the
    # matrix (while they could: one per report) and the heartbeats of their own agents (not actions: they stay
    # out of the audit log).
    await stack.projected()
    claims = {"launch.job_claimed": 3}
    for principal in ("user:vic", "user:otto", "user:mona"):
        assert await _actions_of(stack, principal) == claims


def _code(answer: dict[str, Any]) -> str:
    return answer["errors"][0]["extensions"]["code"] if answer.get("errors") else "ok"


async def test_an_agent_acts_only_under_its_keys_agent_ids_and_reports_only_on_jobs_it_claimed(stack: Stack) -> None:
    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    agent_key = await stack.key("service:agent", role="member")
    rival_key = await stack.key("service:rival", role="member")
    job_id = (await stack.graphql(ENQUEUE, {"e": "acme", "s": SOURCE}))["data"]["enqueueJob"]["id"]
    agent = "service:agent:host-1"

    forged = await stack.graphql(CLAIM, {"id": job_id, "a": agent}, key=rival_key)
    by_an_admin = await stack.graphql(CLAIM, {"id": job_id, "a": agent})
    assert _code(forged) == _code(by_an_admin) == "FORBIDDEN"
    assert "service:rival:<name>" in forged["errors"][0]["message"]
    assert _code(await stack.graphql(CLAIM, {"id": job_id, "a": agent}, key=agent_key)) == "ok"

    for report in (STARTED, OUTPUT, FINISHED):
        as_the_agent = await stack.graphql(report, {"id": job_id, "a": agent}, key=rival_key)
        as_itself = await stack.graphql(report, {"id": job_id, "a": "service:rival:host-9"}, key=rival_key)
        assert (_code(as_the_agent), _code(as_itself)) == ("FORBIDDEN", "CONFLICT"), report
    assert _code(await stack.graphql(HEARTBEAT, {"a": agent}, key=rival_key)) == "FORBIDDEN"

    state = "query($id: ID!) { launchJob(id: $id) { state agentId output { items { text } } } }"
    job = await stack.graphql(state, {"id": job_id})
    assert job["data"]["launchJob"] == {"state": "CLAIMED", "agentId": agent, "output": {"items": []}}
    assert _code(await stack.graphql(STARTED, {"id": job_id, "a": agent}, key=agent_key)) == "ok"


async def test_the_agent_program_names_itself_after_its_key_and_leaves_jobs_its_key_may_not_run(
    stack: Stack, tmp_path: Path
) -> None:
    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    key = await stack.key("service:agent", role="member")
    assert "errors" not in await stack.graphql(GRANT, {"p": "service:agent", "s": "entity:secret", "r": "VIEWER"})
    repo, commit = make_training_repo(tmp_path / "repo")
    ledger = tmp_path / "ledger.txt"
    source = {"kind": "git", "git_remote": repo, "git_commit": commit, "entry_point": ["python", "record.py"]}
    enqueue = """mutation($e: String!, $s: GenericScalar, $c: GenericScalar, $p: Int) {
      enqueueJob(input: {queue: "cpu", entity: $e, project: "nature", source: $s, config: $c, priority: $p}) { id }
    }"""
    jobs = {}
    for entity, priority in (("secret", 10), ("acme", 0)):  # the one it may not run comes first
        answer = await stack.graphql(enqueue, {"e": entity, "s": source, "c": {"ledger": str(ledger)}, "p": priority})
        jobs[entity] = answer["data"]["enqueueJob"]["id"]

    assert stack.client is not None
    env = {**os.environ, "MODELREG_URL": str(stack.client.make_url("/")).rstrip("/"), "MODELREG_API_KEY": key}
    command = [sys.executable, "-m", "modelreg.services.cli", "agent", "--queue", "cpu", "--heartbeat", "0.5"]
    agent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = "query($id: ID!) { launchJob(id: $id) { state agentId } }"
    try:

        async def acme_job_finished() -> bool:
            return (await stack.graphql(state, {"id": jobs["acme"]}))["data"]["launchJob"]["state"] == "FINISHED"

        await wait_until(acme_job_finished, timeout_s=120)
    finally:
        agent.send_signal(signal.SIGTERM)
        await asyncio.to_thread(agent.wait, 30)  # off the loop: its last requests go to the API in this loop

    ran = (await stack.graphql(state, {"id": jobs["acme"]}))["data"]["launchJob"]
    left = (await stack.graphql(state, {"id": jobs["secret"]}))["data"]["launchJob"]
    assert ran["agentId"].startswith("service:agent:") and left == {"state": "QUEUED", "agentId": None}
    assert ledger.read_text().split() == [jobs["acme"]]


async def test_an_agent_key_limited_to_a_queue_claims_only_jobs_of_entities_it_is_limited_to_as_well(
    stack: Stack,
) -> None:
    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    assert stack.client is not None
    app = stack.client.server.app[APP]

    async def pool_key(*limits: str) -> str:
        command = IssueApiKey(principal_kind="service", principal_id="pool", role="member", limited_to=limits)
        return (await app.execute(command, service_caller("tests"))).subject_id

    queue_only, queue_and_acme = await pool_key("queue:cpu"), await pool_key("queue:cpu", "entity:acme")
    job_id = (await stack.graphql(ENQUEUE, {"e": "acme", "s": SOURCE}))["data"]["enqueueJob"]["id"]

    refused = await stack.graphql(CLAIM, {"id": job_id, "a": "service:pool:a"}, key=queue_only)
    assert _code(refused) == "FORBIDDEN" and "entity:acme" in refused["errors"][0]["message"]
    claim = "mutation($id: ID!, $a: String!) { claimJob(input: {id: $id, agentId: $a}) { attempt apiKey } }"
    claimed = await stack.graphql(claim, {"id": job_id, "a": "service:pool:a"}, key=queue_and_acme)
    assert claimed["data"]["claimJob"]["attempt"] == 1

    # The attempt's key holds in acme only: its agent's key may not write in the registry either.
    await stack.projected()
    issued = await stack.graphql('{ auditLog(action: "launch.job_claimed") { items { details } } }')
    (details,) = [item["details"] for item in issued["data"]["auditLog"]["items"]]
    assert (details["key_role"], details["key_scopes"]) == ("member", ["entity:acme"])
    job_key = claimed["data"]["claimJob"]["apiKey"]
    tag = 'mutation { tagRegisteredModel(input: {registeredModel: "fresh-model", tag: "by-the-job"}) { name } }'
    assert _code(await stack.graphql(tag, key=job_key)) == "FORBIDDEN"


async def test_a_job_cannot_enqueue_its_successor_nor_run_a_job_again(stack: Stack) -> None:
    # With its attempt's key a job's code enqueued its own successor, which got a fresh key and enqueued the next,
    # without end, even after the first key was revoked; into any queue taking its team, at priority 1000.
    await stack.graphql(CREATE_QUEUE, {"n": "qb"})
    assert stack.client is not None
    issue = IssueApiKey(
        principal_kind="service", principal_id="agentb", role="member", limited_to=("queue:qb", "entity:beta")
    )
    agent_key = (await stack.client.server.app[APP].execute(issue, service_caller("tests"))).subject_id
    enqueue = """mutation($s: GenericScalar, $p: Int) {
      enqueueJob(input: {queue: "qb", entity: "beta", project: "nature", source: $s, priority: $p}) { id }
    }"""
    job_id = (await stack.graphql(enqueue, {"s": SOURCE}))["data"]["enqueueJob"]["id"]
    ended = (await stack.graphql(enqueue, {"s": SOURCE}))["data"]["enqueueJob"]["id"]
    await stack.graphql(CANCEL, {"id": ended})
    claim = "mutation($id: ID!, $a: String!) { claimJob(input: {id: $id, agentId: $a}) { attempt apiKey } }"
    claimed = await stack.graphql(claim, {"id": job_id, "a": "service:agentb:h1"}, key=agent_key)
    job_key = claimed["data"]["claimJob"]["apiKey"]

    successor = await stack.graphql(enqueue, {"s": SOURCE, "p": 1000}, key=job_key)
    retry = "mutation($id: ID!) { retryJob(input: {id: $id}) { id } }"
    again = await stack.graphql(retry, {"id": ended}, key=job_key)

    assert _code(successor) == _code(again) == "FORBIDDEN"
    message = successor["errors"][0]["message"]
    assert f"issued for an attempt of job {job_id} and may not be used for enqueueing a job" in message
    assert "enqueue it with your own key" in message and "createAutomation" in message
    assert "may not be used for running a job again" in again["errors"][0]["message"]
    jobs = (await stack.graphql("{ launchJobs(first: 10) { items { id } } }"))["data"]["launchJobs"]["items"]
    assert sorted(job["id"] for job in jobs) == sorted([job_id, ended])
    # Its own job it may stop, which ends its attempt (and its key).
    assert _code(await stack.graphql(CANCEL, {"id": job_id}, key=job_key)) == "ok"


async def test_a_jobs_output_comes_a_page_at_a_time_in_the_order_it_was_printed(stack: Stack) -> None:
    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    agent_key = await stack.key("service:agent", role="member")
    job_id = (await stack.graphql(ENQUEUE, {"e": "acme", "s": SOURCE}))["data"]["enqueueJob"]["id"]
    agent = "service:agent:host-1"
    assert _code(await stack.graphql(CLAIM, {"id": job_id, "a": agent}, key=agent_key)) == "ok"
    line = """mutation($id: ID!, $a: String!, $t: String!) {
      captureJobOutput(input: {id: $id, agentId: $a, attempt: 1, stream: STDOUT, text: $t})
    }"""
    printed = [f"epoch {n}\n" for n in range(7)]
    for text in printed:
        assert _code(await stack.graphql(line, {"id": job_id, "a": agent, "t": text}, key=agent_key)) == "ok"

    output = """query($id: ID!, $after: String) {
      launchJob(id: $id) { output(first: 3, after: $after) { items { text } endCursor hasNextPage } }
    }"""
    pages, after = [], None
    while True:
        page = (await stack.graphql(output, {"id": job_id, "after": after}))["data"]["launchJob"]["output"]
        pages.append([item["text"] for item in page["items"]])
        if not page["hasNextPage"]:
            break
        after = page["endCursor"]
    assert pages == [printed[0:3], printed[3:6], printed[6:]]


async def test_an_agent_for_some_teams_is_shown_only_their_waiting_jobs(stack: Stack) -> None:
    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    jobs = {e: (await stack.graphql(ENQUEUE, {"e": e, "s": SOURCE}))["data"]["enqueueJob"]["id"] for e in ("a", "b")}
    waiting = """query($e: [String!]) {
      waitingJobs(queues: ["cpu"], entities: $e) { items { id entity } } }"""
    shown = await stack.graphql(waiting, {"e": ["b"]})
    assert shown["data"]["waitingJobs"]["items"] == [{"id": jobs["b"], "entity": "b"}]
    every = (await stack.graphql(waiting, {"e": None}))["data"]["waitingJobs"]["items"]
    assert sorted(job["entity"] for job in every) == ["a", "b"]


async def test_a_queue_for_some_teams_takes_their_jobs_only_and_leaves_a_team_taken_off_it_waiting(
    stack: Stack,
) -> None:
    cli = await command_line(stack)
    created = await cli("queue", "create", "cpu", "--entity", "acme", "--entity", "lynx")
    assert "queue cpu (local-process) created, takes jobs of acme, lynx only" in created
    refused = await stack.graphql(ENQUEUE, {"e": "umbrella", "s": SOURCE})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "queue 'cpu' does not take jobs of 'umbrella'" in refused["errors"][0]["message"]
    jobs = {
        e: (await stack.graphql(ENQUEUE, {"e": e, "s": SOURCE}))["data"]["enqueueJob"]["id"] for e in ("acme", "lynx")
    }

    assert "queue cpu takes jobs of lynx only" in await cli("queue", "entities", "cpu", "lynx")
    waiting = 'query { waitingJobs(queues: ["cpu"]) { items { id } } }'
    assert (await stack.graphql(waiting))["data"]["waitingJobs"]["items"] == [{"id": jobs["lynx"]}]
    claim = await stack.graphql(CLAIM, {"id": jobs["acme"], "a": "user:alice:h1"})
    assert "queue 'cpu' does not take jobs of 'acme'" in claim["errors"][0]["message"]
    queues = "query { launchQueues(first: 5) { items { name entities takesEveryEntity activeJobs } } }"
    assert (await stack.graphql(queues))["data"]["launchQueues"]["items"] == [
        {"name": "cpu", "entities": ["lynx"], "takesEveryEntity": False, "activeJobs": 2}
    ]
    await stack.graphql('mutation { setVisibility(input: {scope: "entity:lynx", visibility: PRIVATE}) { scope } }')
    outsider = await stack.key("user:vic", "member")
    assert (await stack.graphql(queues, key=outsider))["data"]["launchQueues"]["items"] == [
        {"name": "cpu", "entities": [], "takesEveryEntity": False, "activeJobs": 1}  # nor its jobs counted
    ]
    history = '{ auditLog(stream: "launch_queue:cpu") { items { action } } }'
    assert (await stack.graphql(history, key=outsider))["data"]["auditLog"]["items"] == []  # both name lynx
    assert len((await stack.graphql(history))["data"]["auditLog"]["items"]) == 2

    assert "queue cpu takes every entity's jobs" in await cli("queue", "entities", "cpu")
    assert len((await stack.graphql(waiting))["data"]["waitingJobs"]["items"]) == 2
    assert (await stack.graphql(CLAIM, {"id": jobs["acme"], "a": "user:alice:h1"}))["data"]["claimJob"]["attempt"] == 1


async def test_a_cancelled_jobs_key_flushes_and_finishes_its_own_runs_and_nothing_else_until_it_is_revoked(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Revoked at the cancel, the key refused (401) what the job's SIGTERM handler sent: its runs lost their last
    # points and were marked crashed 30 s later instead of failed 143.
    from modelreg.projections import identity

    monkeypatch.setattr(identity, "CANCELLED_JOB_KEY_GRACE_S", 3.0, raising=False)
    await stack.graphql(CREATE_QUEUE, {"n": "cpu"})
    agent_key = await stack.key("service:flusher", role="member")
    job_id = (await stack.graphql(ENQUEUE, {"e": "acme", "s": SOURCE}))["data"]["enqueueJob"]["id"]
    claim = "mutation($id: ID!, $a: String!) { claimJob(input: {id: $id, agentId: $a}) { attempt apiKey } }"
    job_key = (await stack.graphql(claim, {"id": job_id, "a": "service:flusher:h1"}, key=agent_key))["data"][
        "claimJob"
    ]["apiKey"]
    start = "mutation($i: StartRunInput!) { startRun(input: $i) { runId } }"
    its_run = {"entity": "acme", "project": "nature", "runId": "its-run", "environment": {"launch": {"job_id": job_id}}}
    assert _code(await stack.graphql(start, {"i": its_run}, key=job_key)) == "ok"
    not_its = {"entity": "acme", "project": "nature", "runId": "a-colleagues-run"}
    assert _code(await stack.graphql(start, {"i": not_its})) == "ok"
    alias = """mutation { addAlias(input: {registeredModel: "nature-classification",
      artifactVersionId: "00000000-0000-0000-0000-000000000000", alias: "production"}) { version } }"""
    assert _code(await stack.graphql(alias, key=job_key)) == "NOT_FOUND"  # it may move aliases while it runs

    await stack.graphql(CANCEL, {"id": job_id})

    log = """mutation($r: String!) { logMetrics(input: {entity: "acme", project: "nature", runId: $r,
      rows: [{step: 9, values: {tick: 9}}]}) }"""
    finish = """mutation($r: String!) { finishRun(input: {entity: "acme", project: "nature", runId: $r,
      state: FAILED, exitCode: 143}) { state } }"""
    assert _code(await stack.graphql(log, {"r": "its-run"}, key=job_key)) == "ok"
    assert _code(await stack.graphql(finish, {"r": "its-run"}, key=job_key)) == "ok"
    refused = await stack.graphql(finish, {"r": "a-colleagues-run"}, key=job_key)
    assert _code(refused) == "FORBIDDEN" and "is not one of them" in refused["errors"][0]["message"]
    moved = await stack.graphql(alias, key=job_key)
    assert _code(moved) == "FORBIDDEN" and f"job {job_id} was cancelled" in moved["errors"][0]["message"]
    another = {**its_run, "runId": "after-the-cancel"}
    assert _code(await stack.graphql(start, {"i": another}, key=job_key)) == "FORBIDDEN"
    assert _code(await stack.graphql(ENQUEUE, {"e": "acme", "s": SOURCE}, key=job_key)) == "FORBIDDEN"
    runs = '{ run(entity: "acme", project: "nature", runId: "its-run") { state } }'
    assert (await stack.graphql(runs))["data"]["run"]["state"] == "FAILED"

    async def revoked() -> bool:
        assert stack.client is not None
        answer = await stack.client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {job_key}"}
        )
        return answer.status == 401

    await wait_until(revoked, timeout_s=15)
