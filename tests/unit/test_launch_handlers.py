"""Launch: queues, jobs enqueued from a run or a source, the first agent's claim wins, an agent reports only
about the attempt it holds, and speaks only for its own key."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

import pytest
from support.write_side import ADMIN, MEMBER, VIEWER, WriteSide, caller
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from modelreg.events.envelope import Envelope
from modelreg.events.launch import JobCancelled, JobFinished, JobSource, Trigger, ends_attempt, job_stream
from modelreg.services.commands.access import Caller, entity_scopes, job_key_scopes, model_scopes, service_caller
from modelreg.services.commands.commands import (
    Command,
    FinishRun,
    GrantRole,
    IssueApiKey,
    RevokeApiKey,
    SetVisibility,
    StartRun,
)
from modelreg.services.commands.decisions import CommandContext, Handler
from modelreg.services.commands.launch_commands import (
    CancelJob,
    CaptureJobOutput,
    ChangeAutomation,
    ClaimJob,
    CreateAutomation,
    CreateQueue,
    DeleteAutomation,
    DeleteQueue,
    EnqueueJob,
    Heartbeat,
    RecordAutomationFired,
    RecordWebhookAttempt,
    ReportJobFinished,
    ReportJobStarted,
    RequeueJob,
    RetryFiring,
    RetryJob,
    ReturnJob,
    RotateWebhookSecret,
    SetAutomationEnabled,
    SetQueueEntities,
)
from modelreg.services.commands.launch_handlers import LAUNCH_HANDLERS, cancel_job, set_automation_enabled
from modelreg.services.http.api import caller_of_key

SOURCE = JobSource(kind="git", git_remote="https://git.example.com/acme/train.git", entry_point=("python", "train.py"))
AGENT = caller("member", "gpu")  # a service account's key would do as well
AGENT_ID = "user:gpu:host-1"


async def queued(registry: WriteSide, by: Caller = MEMBER, **fields: Any) -> UUID:
    if "cpu" not in registry.read_models.launch.queues:
        await registry(CreateQueue(queue="cpu"))
    enqueue = EnqueueJob(queue="cpu", entity="acme", project="fraud", **({"source": SOURCE} | fields))
    return (await registry(enqueue, by)).subject_id


async def claimed(registry: WriteSide) -> UUID:
    job = await queued(registry)
    await registry(ClaimJob(job_id=job, agent_id=AGENT_ID), AGENT)
    return job


async def finished_run(registry: WriteSide, environment: dict[str, Any]) -> None:
    await registry(
        StartRun(entity="acme", project="fraud", run_id="r1", config={"lr": 0.1, "epochs": 3}, environment=environment)
    )
    await registry(FinishRun(entity="acme", project="fraud", run_id="r1"))


GIT = {"remote": "https://git.example/acme/fraud.git", "commit": "abc1234", "root": "/home/mo/fraud", "diff": "+x"}


async def test_a_queue_is_created_once_by_an_admin() -> None:
    registry = WriteSide()
    with pytest.raises(PermissionDenied, match="create queue needs admin"):
        await registry(CreateQueue(queue="cpu"), MEMBER)
    await registry(CreateQueue(queue="cpu"), ADMIN)
    with pytest.raises(Conflict, match="queue 'cpu' already exists"):
        await registry(CreateQueue(queue="cpu"))


async def test_a_queue_is_deleted_by_an_admin_once_nothing_waits_runs_or_launches_into_it() -> None:
    registry = WriteSide()
    job = await queued(registry)
    with pytest.raises(PermissionDenied, match="delete queue needs admin"):
        await registry(DeleteQueue(queue="cpu"), MEMBER)
    with pytest.raises(Conflict, match="queue 'cpu' has 1 job\\(s\\) waiting or running: cancel them first"):
        await registry(DeleteQueue(queue="cpu"))
    await registry(CancelJob(job_id=job), MEMBER)
    launch = {"kind": "launch", "queue": "cpu", "entity": "acme", "project": "fraud", "source": SOURCE.model_dump()}
    evaluate = CreateAutomation(name="evaluate", trigger={"event": "run_finished", "entity": "acme"}, action=launch)
    automation_id = (await registry(evaluate, MEMBER)).subject_id
    with pytest.raises(Conflict, match=f"where 1 automation\\(s\\) launch jobs: {automation_id} \\(evaluate\\)"):
        await registry(DeleteQueue(queue="cpu"))
    await registry(DeleteAutomation(automation_id=automation_id), MEMBER)

    await registry(DeleteQueue(queue="cpu"), ADMIN)
    assert registry.appended()[-1].stream == "launch_queue:cpu"
    with pytest.raises(NotFound, match="queue 'cpu' does not exist"):
        await registry(EnqueueJob(queue="cpu", entity="acme", project="fraud", source=SOURCE), MEMBER)
    with pytest.raises(NotFound, match="queue 'cpu' does not exist"):
        await registry(DeleteQueue(queue="cpu"))
    await registry(CreateQueue(queue="cpu", resource="docker"))  # its name is free again
    assert registry.read_models.launch.queues["cpu"]["resource"] == "docker"


async def test_a_job_waits_on_an_existing_queue() -> None:
    with pytest.raises(NotFound, match="queue 'gpu' does not exist: an admin creates it"):
        await WriteSide()(EnqueueJob(queue="gpu", entity="acme", project="fraud", source=SOURCE))


async def test_a_job_runs_a_source_with_its_config_and_overrides() -> None:
    registry = WriteSide()
    job = await queued(registry, config={"lr": 0.1}, overrides={"lr": 0.2}, priority=5)
    enqueued = registry.appended()[-1].payload
    assert (enqueued.job_id, enqueued.config, enqueued.priority) == (job, {"lr": 0.2}, 5)


async def test_a_job_keeps_the_time_its_attempts_may_run() -> None:
    registry = WriteSide()
    await queued(registry, time_limit_s=6 * 3600)
    assert registry.appended()[-1].payload.time_limit_s == 6 * 3600


@pytest.mark.parametrize("seconds", [0, -5, 30 * 24 * 3600 + 1])
def test_a_time_limit_is_a_second_to_thirty_days(seconds: int) -> None:
    with pytest.raises(ValueError, match="time_limit_s"):
        EnqueueJob(queue="cpu", entity="acme", project="fraud", source=SOURCE, time_limit_s=seconds)


async def test_a_job_clones_a_finished_runs_code_and_config() -> None:
    registry = WriteSide()
    await finished_run(registry, {"git": GIT, "command": ["/usr/bin/python", "/home/mo/fraud/train.py", "--fast"]})
    await queued(registry, source=None, from_run="r1", overrides={"epochs": 5})
    enqueued = registry.appended()[-1].payload
    assert enqueued.source.entry_point == ("python", "train.py", "--fast")
    assert (enqueued.source.git_commit, enqueued.source.diff_patch) == ("abc1234", "+x")
    assert enqueued.source.cloned_from_run == "acme/fraud/r1"
    assert enqueued.config == {"lr": 0.1, "epochs": 5}


@pytest.mark.parametrize(
    ("environment", "refusal"),
    [
        ({"command": ["python", "train.py"]}, "recorded no git remote and commit"),
        ({"git": {**GIT, "diff_omitted_bytes": 5_000_000}}, "5,000,000 bytes of uncommitted changes"),
        ({"git": GIT, "command": ["python"]}, "recorded no command line to re-run"),
        # What a client recorded, not checked as a source is: a clear refusal, not an INTERNAL error.
        ({"git": GIT, "command": "python train.py"}, "recorded its command line as str, not a list of arguments"),
        (
            {"git": {**GIT, "commit": "not-hex!"}, "command": ["python", "t.py"]},
            "recorded what a job cannot run \\(git_commit: .not-hex!. is not a git commit: 7 to 40 hexadecimal digits",
        ),
    ],
)
async def test_a_run_whose_code_cannot_be_reproduced_is_not_cloned(environment: dict[str, Any], refusal: str) -> None:
    registry = WriteSide()
    await finished_run(registry, environment)
    with pytest.raises(InvalidInput, match=refusal):
        await queued(registry, source=None, from_run="r1")


async def test_cloning_a_run_that_does_not_exist() -> None:
    with pytest.raises(NotFound, match="run acme/fraud/r404 does not exist"):
        await queued(WriteSide(), source=None, from_run="r404")


@pytest.mark.parametrize("fields", [{"source": None}, {"from_run": "r1"}])
async def test_a_job_has_exactly_one_origin(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="give exactly one of fromRun .* or source"):
        await queued(WriteSide(), **fields)


async def test_only_an_automation_enqueues_as_triggered_by() -> None:
    trigger = Trigger(automation_id=uuid7(), event_id=uuid7(), event_type="runs.run_finished")
    with pytest.raises(InvalidInput, match="only an automation enqueues a job as triggered_by"):
        await queued(WriteSide(), triggered_by=trigger)


async def test_an_enqueue_retried_with_its_job_id_enqueues_once() -> None:
    registry = WriteSide()
    job_id = uuid7()
    assert await queued(registry, job_id=job_id) == job_id
    assert await queued(registry, job_id=job_id) == job_id
    assert registry.appended_types().count("launch.job_enqueued") == 1


async def test_the_first_claim_wins_the_next_attempt() -> None:
    registry = WriteSide()
    job = await queued(registry)
    claim = await registry(ClaimJob(job_id=job, agent_id=AGENT_ID), AGENT)
    assert claim.subject_id.attempt == 1
    with pytest.raises(Conflict, match="is claimed, not queued: another agent took it"):
        await registry(ClaimJob(job_id=job, agent_id="user:gpu:host-2"), AGENT)


async def test_an_agent_speaks_for_its_own_key_only() -> None:
    registry = WriteSide()
    job = await queued(registry)
    with pytest.raises(PermissionDenied, match="user:gpu may not act as agent 'service:pool:h1'"):
        await registry(ClaimJob(job_id=job, agent_id="service:pool:h1"), AGENT)
    with pytest.raises(PermissionDenied, match="may not act as agent"):
        await registry(ClaimJob(job_id=job, agent_id="service:pool:h1"), ADMIN)


async def test_a_job_command_is_checked_on_the_jobs_entity() -> None:
    registry = WriteSide()
    job = await queued(registry)
    elsewhere = caller("member", "eve", grants={"entity:acme": "viewer"})
    with pytest.raises(PermissionDenied, match="user:eve is a viewer of entity:acme; claim job needs member"):
        await registry(ClaimJob(job_id=job, agent_id="user:eve:h"), elsewhere)
    with pytest.raises(NotFound, match="does not exist"):
        await registry(ClaimJob(job_id=uuid7(), agent_id=AGENT_ID), AGENT)


async def test_a_queue_named_for_some_teams_takes_only_their_jobs() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="gpu", entities=("acme", "lynx", "acme")))
    assert registry.read_models.launch.queues["gpu"]["entities"] == ["acme", "lynx"]
    assert registry.appended()[-1].payload.scopes == ("entity:acme", "entity:lynx")  # who reads the record
    await registry(EnqueueJob(queue="gpu", entity="acme", project="fraud", source=SOURCE), MEMBER)
    with pytest.raises(PermissionDenied, match="queue 'gpu' does not take jobs of 'umbrella'"):
        await registry(EnqueueJob(queue="gpu", entity="umbrella", project="x", source=SOURCE), MEMBER)
    with pytest.raises(PermissionDenied, match="needs admin"):
        await registry(SetQueueEntities(queue="gpu", entities=()), MEMBER)
    umbrella_launch = {"kind": "launch", "queue": "gpu", "entity": "umbrella", "project": "x", "source": SOURCE}
    retrain = CreateAutomation(name="retrain", trigger={"event": "run_finished"}, action=umbrella_launch)
    with pytest.raises(PermissionDenied, match="queue 'gpu' does not take jobs of 'umbrella'"):
        await registry(retrain, MEMBER)


async def test_a_team_taken_off_a_queue_leaves_its_waiting_jobs_unclaimed_until_it_is_named_again() -> None:
    registry = WriteSide()
    job = await queued(registry)  # on cpu, which takes every entity's jobs
    await registry(SetQueueEntities(queue="cpu", entities=("lynx",)))
    assert registry.appended_types()[-1] == "launch.queue_entities_set"
    assert (await registry(SetQueueEntities(queue="cpu", entities=("lynx",)))).events == []  # already so
    with pytest.raises(PermissionDenied, match="queue 'cpu' does not take jobs of 'acme'"):
        await registry(ClaimJob(job_id=job, agent_id=AGENT_ID), AGENT)
    await registry(SetQueueEntities(queue="cpu", entities=()))
    await registry(ClaimJob(job_id=job, agent_id=AGENT_ID), AGENT)
    with pytest.raises(NotFound, match="queue 'tpu' does not exist"):
        await registry(SetQueueEntities(queue="tpu", entities=("acme",)))


def _attempt_keys(registry: WriteSide, job: UUID) -> list[dict[str, Any]]:
    return [key for key in registry.read_models.identity.keys.values() if key.get("job_id") == job]


async def test_each_attempt_runs_with_a_key_of_its_own_that_is_revoked_when_the_attempt_ends() -> None:
    registry = WriteSide()
    job = await queued(registry)
    first = (await registry(ClaimJob(job_id=job, agent_id=AGENT_ID), AGENT)).subject_id
    (key,) = _attempt_keys(registry, job)
    assert first.api_key.startswith(f"mr_{key['key_id']}_") and key["revoked_at"] is None
    assert (key["principal_kind"], key["principal_id"], key["role"]) == ("user", "gpu", "member")
    assert key["scopes"] == ["entity:acme", "registry"]
    assert "key_sha256" not in registry.appended()[-1].payload.public_dump()

    await registry(RequeueJob(job_id=job, attempt=1, reason="agent vanished"), service_caller("launch-supervisor"))
    assert [k["revoked_at"] is None for k in _attempt_keys(registry, job)] == [False]
    second = (await registry(ClaimJob(job_id=job, agent_id=AGENT_ID), AGENT)).subject_id
    assert second.api_key != first.api_key
    await registry(ReportJobFinished(job_id=job, agent_id=AGENT_ID, attempt=2, state="finished"), AGENT)
    assert [k["revoked_at"] is None for k in _attempt_keys(registry, job)] == [False, False]

    job_key = replace(AGENT, key_id=key["key_id"], limits=tuple(key["scopes"]), job_id=job)
    with pytest.raises(PermissionDenied, match=f"issued for an attempt of job {job} and does not act as agent"):
        await registry(ClaimJob(job_id=await queued(registry), agent_id=AGENT_ID), job_key)

    cancelled = await claimed(registry)
    await registry(CancelJob(job_id=cancelled), MEMBER)
    assert [k["revoked_at"] is None for k in _attempt_keys(registry, cancelled)] == [False]


async def test_revoking_the_agents_key_that_claimed_revokes_its_attempts_keys_at_once() -> None:
    registry = WriteSide()
    issued = await registry(IssueApiKey(principal_kind="user", principal_id="gpu", role="member"))
    other = await registry(IssueApiKey(principal_kind="user", principal_id="gpu", role="member"))
    host_1, host_2 = (registry.read_models.identity.keys[a.subject_id.split("_")[1]] for a in (issued, other))
    on_host_1, on_host_2 = await queued(registry), await queued(registry)
    await registry(ClaimJob(job_id=on_host_1, agent_id=AGENT_ID), replace(AGENT, key_id=host_1["key_id"]))
    await registry(ClaimJob(job_id=on_host_2, agent_id="user:gpu:host-2"), replace(AGENT, key_id=host_2["key_id"]))

    await registry(RevokeApiKey(key_id=host_1["key_id"]))

    # The attempt's key sat on the revoked key's host; the same principal's other host keeps its job's key.
    assert [k["revoked_at"] is None for k in _attempt_keys(registry, on_host_1)] == [False]
    assert [k["revoked_at"] is None for k in _attempt_keys(registry, on_host_2)] == [True]
    claims = [e.payload for e in registry.appended() if e.type == "launch.job_claimed"]
    assert [c.claimed_with for c in claims] == [host_1["key_id"], host_2["key_id"]]


async def test_an_attempts_key_holds_no_more_than_its_agents_key() -> None:
    registry = WriteSide()
    job = await queued(registry)
    by_grant = caller("viewer", "vi", grants={"entity:acme": "member"})
    await registry(ClaimJob(job_id=job, agent_id="user:vi:h1"), by_grant)
    (key,) = _attempt_keys(registry, job)
    assert (key["role"], key["scopes"]) == ("viewer", ["entity:acme", "registry"])  # member in acme by its grant

    admin_job = await queued(registry)
    await registry(ClaimJob(job_id=admin_job, agent_id="user:ada:h1"), ADMIN)
    assert _attempt_keys(registry, admin_job)[0]["role"] == "member"  # a job manages no keys, grants or queues

    limited_job = await queued(registry)
    limited = caller("member", "pool", limits=("queue:cpu", "entity:acme"))
    await registry(ClaimJob(job_id=limited_job, agent_id="user:pool:h1"), limited)
    assert _attempt_keys(registry, limited_job)[0]["scopes"] == ["entity:acme"]


async def test_an_agent_claims_a_private_teams_job_only_by_a_grant_there_which_its_jobs_key_then_holds() -> None:
    registry = WriteSide()
    await registry(SetVisibility(scope="entity:acme", private=True))
    await registry(SetVisibility(scope="entity:lynx", private=True))
    job = await queued(registry)
    # An installation admin's key needs no grant there, but its job's key (member at most) would.
    with pytest.raises(PermissionDenied, match="entity:acme is private and user:ada holds no role there, so the key"):
        await registry(ClaimJob(job_id=job, agent_id="user:ada:h1"), registry.looked_up(ADMIN))
    await registry(GrantRole(principal_kind="user", principal_id="ada", scope="entity:acme", role="member"))
    granted = replace(ADMIN, grants={"entity:acme": "member"})
    claim = await registry(ClaimJob(job_id=job, agent_id="user:ada:h1"), registry.looked_up(granted))
    job_key = await caller_of_key(claim.subject_id.api_key, registry.read_models.identity)
    assert job_key.role_on(entity_scopes("acme")) == "member"
    assert job_key.role_on(entity_scopes("lynx")) == "none"
    assert job_key.role_on(model_scopes("fraud-detector")) == "member"


async def test_an_earlier_attempts_late_end_leaves_the_current_attempts_key_live() -> None:
    registry = WriteSide()
    job = await claimed(registry)
    await registry(RequeueJob(job_id=job, attempt=1, reason="agent vanished"), service_caller("launch-supervisor"))
    current = (await registry(ClaimJob(job_id=job, agent_id=AGENT_ID), AGENT)).subject_id
    late = JobFinished(job_id=job, attempt=1, state="failed", exit_code=1)
    assert not ends_attempt(late, job, 2) and ends_attempt(late, job, 1) and not ends_attempt(late, uuid7(), 1)
    assert ends_attempt(JobCancelled(job_id=job), job, 2)
    registry.read_models.apply(Envelope.new(late, stream=job_stream(job), actor=AGENT.actor))
    assert (await caller_of_key(current.api_key, registry.read_models.identity)).job_attempt == 2


async def test_a_jobs_key_creates_no_automation_and_switches_none_on() -> None:
    registry = WriteSide()
    job = await claimed(registry)
    (key,) = _attempt_keys(registry, job)
    job_key = replace(AGENT, key_id=key["key_id"], limits=tuple(key["scopes"]), job_id=job, job_attempt=1)
    evaluate = CreateAutomation(
        name="evaluate",
        trigger={"event": "artifact_version_logged", "entity": "acme"},
        action={"kind": "launch", "queue": "cpu", "entity": "acme", "project": "fraud", "source": SOURCE},
    )
    with pytest.raises(PermissionDenied, match=f"attempt of job {job} and may not be used for creating an automation"):
        await registry(evaluate, job_key)
    automation = (await registry(evaluate, AGENT)).subject_id
    await registry(SetAutomationEnabled(automation_id=automation, enabled=False), AGENT)
    with pytest.raises(
        PermissionDenied, match="may not be used for switching on an automation: an automation outlives"
    ):
        await registry(SetAutomationEnabled(automation_id=automation, enabled=True), job_key)
    await registry(SetAutomationEnabled(automation_id=automation, enabled=True), AGENT)
    with pytest.raises(PermissionDenied, match="switching off an automation: a job's code acts through its own job"):
        await registry(SetAutomationEnabled(automation_id=automation, enabled=False), job_key)


async def test_a_job_cannot_enqueue_its_successor_nor_act_on_other_jobs_queues_or_automations() -> None:
    # A job's code enqueued its own successor, which got a fresh key and enqueued the next, without end, after the
    # first key was revoked; and into any queue taking its team, at any priority.
    registry = WriteSide()
    job = await claimed(registry)
    (key,) = _attempt_keys(registry, job)
    job_key = replace(AGENT, key_id=key["key_id"], limits=tuple(key["scopes"]), job_id=job, job_attempt=1)
    other, ended = await queued(registry), await queued(registry)
    await registry(CancelJob(job_id=ended), MEMBER)
    # Its agent principal's own automations: the creator's checks would let its key through.
    evaluate = CreateAutomation(
        name="evaluate",
        trigger={"event": "artifact_version_logged", "entity": "acme"},
        action={"kind": "launch", "queue": "cpu", "entity": "acme", "project": "fraud", "source": SOURCE},
    )
    on = (await registry(evaluate, AGENT)).subject_id
    off = (await registry(evaluate.model_copy(update={"enabled": False}), AGENT)).subject_id
    failed = uuid7()
    fired = RecordAutomationFired(automation_id=on, event_id=failed, event_type="x", outcome="failed")
    await registry(fired, caller("admin", str(on), kind="automation"))
    attempt = {"job_id": job, "agent_id": AGENT_ID, "attempt": 1}

    refused: list[Command] = [
        CreateQueue(queue="gpu"),
        SetQueueEntities(queue="cpu", entities=("acme",)),
        DeleteQueue(queue="cpu"),
        EnqueueJob(queue="cpu", entity="acme", project="fraud", source=SOURCE, priority=1000),
        ClaimJob(job_id=other, agent_id=AGENT_ID),
        ReportJobStarted(**attempt),
        CaptureJobOutput(**attempt, stream="stdout", text="hi"),
        ReportJobFinished(**attempt, state="finished"),
        ReturnJob(**attempt, reason="stopping"),
        RequeueJob(job_id=job, attempt=1, reason="again"),
        RetryJob(job_id=ended),
        CancelJob(job_id=other),
        Heartbeat(agent_id=AGENT_ID, queues=("cpu",)),
        evaluate,
        ChangeAutomation(automation_id=on, **evaluate.model_dump(exclude={"enabled", "command_id", "occurred_at"})),
        SetAutomationEnabled(automation_id=off, enabled=True),
        SetAutomationEnabled(automation_id=on, enabled=False),
        DeleteAutomation(automation_id=on),
        RotateWebhookSecret(automation_id=on),
        RetryFiring(automation_id=on, event_id=failed),
        RecordAutomationFired(automation_id=on, event_id=uuid7(), event_type="x", outcome="failed"),
        RecordWebhookAttempt(automation_id=on, event_id=failed, attempt=1, url="https://x.example", duration_ms=1),
    ]
    # Every Launch and automation command is decided here: one added later must say what a job's key may do with it.
    assert {type(command) for command in refused} == set(LAUNCH_HANDLERS)
    appended = len(registry.appended())
    for command in refused:
        with pytest.raises(PermissionDenied) as refusal:
            await registry(command, job_key)
        if command.needs != "admin":  # an admin's command is refused for the key's role first (member at most)
            assert f"issued for an attempt of job {job}" in str(refusal.value), command
    assert len(registry.appended()) == appended
    with pytest.raises(PermissionDenied, match="may not be used for enqueueing a job: that job would run after this"):
        await registry(refused[3], job_key)

    # What it may do: stop its own job (which ends its attempt, and its key), and what its agent's key may anyway.
    await registry(CancelJob(job_id=job, reason="diverged"), job_key)
    assert registry.read_models.launch.jobs[job]["state"] == "cancelled"
    await registry(refused[3], AGENT)


def test_an_attempts_key_is_no_admin_though_its_agents_principal_is_one_by_a_grant() -> None:
    agent = caller("member", "pool", grants={"entity:acme": "admin"})
    job_key = replace(agent, limits=job_key_scopes(agent, "acme"), job_id=uuid7())
    assert agent.role_on(entity_scopes("acme")) == "admin" and job_key.role_on(entity_scopes("acme")) == "member"
    with pytest.raises(PermissionDenied, match="is a member of entity:acme; granting a role needs admin"):
        job_key.require("admin", entity_scopes("acme"), "granting a role")


async def test_an_agent_key_limited_to_a_queue_claims_no_job_of_an_entity_outside_its_limits() -> None:
    registry = WriteSide()
    job = await queued(registry)
    queue_only = caller("member", "pool", limits=("queue:cpu",))
    with pytest.raises(PermissionDenied, match="limited to queue:cpu; claiming a job of entity 'acme' acts on entity"):
        await registry(ClaimJob(job_id=job, agent_id="user:pool:h1"), queue_only)
    other_queue = caller("member", "pool", limits=("queue:gpu", "entity:acme"))
    with pytest.raises(PermissionDenied, match="limited to queue:gpu, entity:acme; claiming a job on queue 'cpu'"):
        await registry(ClaimJob(job_id=job, agent_id="user:pool:h1"), other_queue)
    assert registry.appended_types()[-1] == "launch.job_enqueued"
    acme_only = caller("member", "pool", limits=("entity:acme",))  # a team's key: any queue, that team's jobs
    await registry(ClaimJob(job_id=job, agent_id="user:pool:h1"), acme_only)


async def test_the_agent_holding_the_attempt_reports_its_start_output_and_end() -> None:
    registry = WriteSide()
    job = await claimed(registry)
    await registry(ReportJobStarted(job_id=job, agent_id=AGENT_ID, attempt=1, pid=42), AGENT)
    await registry(CaptureJobOutput(job_id=job, agent_id=AGENT_ID, attempt=1, stream="stdout", text="epoch 1"), AGENT)
    await registry(ReportJobFinished(job_id=job, agent_id=AGENT_ID, attempt=1, state="finished", exit_code=0), AGENT)
    assert registry.read_models.launch.jobs[job]["state"] == "finished"
    assert registry.appended_types()[-3:] == ["launch.job_started", "launch.job_output_captured", "launch.job_finished"]


@pytest.mark.parametrize(
    "report",
    [
        ReportJobStarted(job_id=uuid7(), agent_id=AGENT_ID, attempt=2),
        ReportJobStarted(job_id=uuid7(), agent_id="user:gpu:host-2", attempt=1),
        CaptureJobOutput(job_id=uuid7(), agent_id=AGENT_ID, attempt=2, stream="stderr", text="x"),
        ReportJobFinished(job_id=uuid7(), agent_id=AGENT_ID, attempt=2, state="failed"),
    ],
)
async def test_a_report_about_a_void_attempt_is_refused(report: ReportJobStarted) -> None:
    registry = WriteSide()
    job = await claimed(registry)
    with pytest.raises(Conflict, match=f"of job {job} by .* is void .*: stop working on it"):
        await registry(report.model_copy(update={"job_id": job}), AGENT)


async def test_a_requeued_attempt_is_void_and_a_stale_requeue_changes_nothing() -> None:
    registry = WriteSide()
    job = await claimed(registry)
    with pytest.raises(PermissionDenied, match="requeue job needs admin"):
        await registry(RequeueJob(job_id=job, attempt=1, reason="agent vanished"), MEMBER)
    await registry(RequeueJob(job_id=job, attempt=1, reason="agent vanished"), service_caller("launch-supervisor"))
    assert registry.read_models.launch.jobs[job]["state"] == "queued"
    assert (await registry(RequeueJob(job_id=job, attempt=1, reason="again"))).events == []
    with pytest.raises(Conflict, match="is void"):
        await registry(ReportJobStarted(job_id=job, agent_id=AGENT_ID, attempt=1), AGENT)
    assert (await registry(ClaimJob(job_id=job, agent_id=AGENT_ID), AGENT)).subject_id.attempt == 2


async def test_an_ended_job_runs_again_as_it_was_enqueued_and_a_live_one_is_not_retried() -> None:
    registry = WriteSide()
    job = await queued(registry, config={"lr": 0.1}, overrides={"lr": 0.2}, priority=5, time_limit_s=600)
    with pytest.raises(Conflict, match="is still queued: cancel it first"):
        await registry(RetryJob(job_id=job), MEMBER)
    await registry(CancelJob(job_id=job, reason="wrong data"), MEMBER)
    with pytest.raises(PermissionDenied):
        await registry(RetryJob(job_id=job), VIEWER)

    retry = (await registry(RetryJob(job_id=job), MEMBER)).subject_id
    first, again = (registry.read_models.launch.jobs[j] for j in (job, retry))
    assert retry != job and again["state"] == "queued" and again["retry_of"] == str(job)
    kept = ("queue", "entity", "project", "priority", "source", "config", "overrides", "time_limit_s")
    assert {k: again[k] for k in kept} == {k: first[k] for k in kept}


async def test_an_automations_job_run_again_is_still_the_automations_so_its_loop_guard_holds() -> None:
    registry = WriteSide()
    trigger = Trigger(automation_id=uuid7(), event_id=uuid7(), event_type="registry.alias_added")
    job = await queued(registry, caller("member", "eval", kind="automation"), triggered_by=trigger)
    await registry(CancelJob(job_id=job, reason="flaky GPU"), MEMBER)

    retry = (await registry(RetryJob(job_id=job), MEMBER)).subject_id

    assert registry.read_models.launch.jobs[retry]["triggered_by"] == trigger.model_dump(mode="json")


async def test_a_stopping_agent_gives_back_only_its_own_current_attempt() -> None:
    registry = WriteSide()
    job = await claimed(registry)
    other_agent = caller("member", "cpu")
    with pytest.raises(PermissionDenied):
        await registry(ReturnJob(job_id=job, agent_id=AGENT_ID, attempt=1, reason="stopped"), other_agent)
    assert (await registry(ReturnJob(job_id=job, agent_id=AGENT_ID, attempt=2, reason="stopped"), AGENT)).events == []

    await registry(ReturnJob(job_id=job, agent_id=AGENT_ID, attempt=1, reason="agent stopped: requeued"), AGENT)
    given_back = registry.appended()[-1].payload
    assert (given_back.type, given_back.reason, given_back.by_its_agent) == (
        "launch.job_requeued",
        "agent stopped: requeued",
        True,
    )
    assert registry.read_models.launch.jobs[job]["state"] == "queued"
    # Given back once: a second report (a retry) finds the attempt no longer the agent's.
    assert (await registry(ReturnJob(job_id=job, agent_id=AGENT_ID, attempt=1, reason="again"), AGENT)).events == []
    with pytest.raises(Conflict, match="is void"):
        await registry(ReportJobFinished(job_id=job, agent_id=AGENT_ID, attempt=1, state="finished"), AGENT)


async def test_a_job_is_cancelled_while_it_has_not_ended() -> None:
    registry = WriteSide()
    job = await claimed(registry)
    await registry(CancelJob(job_id=job, reason="wrong config"), MEMBER)
    with pytest.raises(Conflict, match="is already cancelled"):
        await registry(CancelJob(job_id=job), MEMBER)


async def test_an_agents_heartbeat_needs_a_key_that_writes_somewhere() -> None:
    registry = WriteSide()
    beat = Heartbeat(agent_id="user:vi:h1", queues=("cpu",))
    with pytest.raises(PermissionDenied, match="an agent's heartbeat .* needs member"):
        await registry(beat, VIEWER)
    member_by_grant = caller("viewer", "vi", grants={"entity:acme": "member"})
    assert (await registry(beat, member_by_grant)).events[0].stream == "agent:user:vi:h1"
    with pytest.raises(PermissionDenied, match="may not act as agent 'user:vi:h1'"):
        await registry(beat, MEMBER)


async def test_the_server_fails_a_vanished_agents_attempt_in_the_agents_name() -> None:
    registry = WriteSide()
    job = await claimed(registry)
    supervisor = service_caller("launch-supervisor")
    failed = ReportJobFinished(job_id=job, agent_id=AGENT_ID, attempt=1, state="failed", reason="agent vanished")
    await registry(failed, supervisor)
    assert registry.read_models.launch.jobs[job]["state"] == "failed"


@pytest.mark.parametrize(
    ("handler", "command"),
    [
        (cancel_job, CancelJob(job_id=uuid7())),
        (set_automation_enabled, SetAutomationEnabled(automation_id=uuid7(), enabled=False)),
    ],
)
async def test_a_handler_called_without_the_command_path_still_refuses_what_does_not_exist(
    handler: Handler, command: Command
) -> None:
    """The command path asks where the job or automation lives first (and says NotFound); a handler stands alone."""
    registry = WriteSide()
    with pytest.raises(NotFound, match="does not exist"):
        await handler(command, CommandContext(registry.read_models.protocols(), ADMIN))


async def test_an_image_that_docker_would_read_as_an_option_is_refused_at_the_door() -> None:
    registry = WriteSide()
    escape = JobSource(kind="image", image="--privileged", entry_point=("-v", "/:/host", "alpine", "sh"))
    with pytest.raises(InvalidInput, match="source.image '--privileged' is not an image reference"):
        await queued(registry, source=escape)
    assert "launch.job_enqueued" not in registry.appended_types()


async def test_an_image_job_is_refused_on_a_queue_of_local_processes_and_taken_on_a_docker_queue() -> None:
    # Its agents took it and failed it at once ("image jobs need a docker or kubernetes queue"), an automation's
    # every firing, for as long as nobody read the jobs' errors.
    registry = WriteSide()
    image = JobSource(kind="image", image="ghcr.io/acme/train:1", entry_point=("python", "train.py"))
    with pytest.raises(InvalidInput, match="queue 'cpu' runs its jobs as local processes, which cannot start an image"):
        await queued(registry, source=image)
    assert "launch.job_enqueued" not in registry.appended_types()

    await registry(CreateQueue(queue="containers", resource="docker"))
    await registry(EnqueueJob(queue="containers", entity="acme", project="fraud", source=image), MEMBER)
    assert registry.appended_types()[-1] == "launch.job_enqueued"


async def test_a_nested_knob_is_changed_by_its_dotted_path() -> None:
    # `modelreg launch --config optimizer.lr=0.1` added a key "optimizer.lr" beside the optimizer the script read.
    registry = WriteSide()
    nested = {"optimizer": {"lr": 0.001, "momentum": 0.9}, "epochs": 3, "a.b": 1}
    environment = {"git": GIT, "command": ["python", "train.py"]}
    await registry(StartRun(entity="acme", project="fraud", run_id="r1", config=nested, environment=environment))
    await registry(FinishRun(entity="acme", project="fraud", run_id="r1"))
    overrides = {"optimizer.lr": 0.1, "a.b": 2, "epochs.max": 5, "sched.kind": "cos"}
    await queued(registry, source=None, from_run="r1", overrides=overrides)
    assert registry.appended()[-1].payload.config == {
        "optimizer": {"lr": 0.1, "momentum": 0.9},  # set where the config nests
        "epochs": 3,
        "a.b": 2,  # a key the config holds as it is
        "epochs.max": 5,  # no dict there: a key of its own
        "sched.kind": "cos",
    }
    assert nested["optimizer"] == {"lr": 0.001, "momentum": 0.9}  # the run's config is left as it was
    whole = await queued(registry, source=None, from_run="r1", overrides={"optimizer": {"lr": 0.1}})
    assert whole and registry.appended()[-1].payload.config["optimizer"] == {"lr": 0.1}
