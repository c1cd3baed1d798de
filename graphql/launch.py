"""Launch: queues, jobs (enqueue, cancel, watch) and the agent protocol (claim, report, heartbeat)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import graphene

from modelreg.errors import Conflict, NotFound, quoted
from modelreg.graphql.enums import FinishedJobState, JobState, LaunchResource, OutputStream, value_of
from modelreg.graphql.inputs import command_id_field, parse_command
from modelreg.graphql.json_value import JSONValue
from modelreg.graphql.pages import Cursors, int32, key_page, page_of, page_size, paged
from modelreg.graphql.references import parse_uuid
from modelreg.projections.launch_queries import JOB_CONTENTS
from modelreg.projections.timestamps import parsed_time
from modelreg.services.commands.launch_commands import (
    CancelJob,
    CaptureJobOutput,
    ClaimJob,
    CreateQueue,
    DeleteQueue,
    EnqueueJob,
    Heartbeat,
    ReportJobFinished,
    ReportJobStarted,
    RetryJob,
    ReturnJob,
    SetQueueEntities,
)
from modelreg.services.commands.launch_handlers import Claimed


def _waiting_key(job: dict) -> tuple[Any, ...]:
    return job["priority"], job["enqueued_at"], job["job_id"]


def _newest_key(job: dict) -> tuple[Any, ...]:
    return job["enqueued_at"], job["job_id"]


async def _jobs_page(
    info: graphene.ResolveInfo, queue: str | None, state: Any, first: int, after: str | None
) -> dict[str, Any]:
    """Waiting jobs in the order agents take them, the others newest first (LaunchQueries.jobs): two orders, and
    cursors of each."""
    limit, state = page_size(first), value_of(state)
    parsers: tuple[Callable[[str], Any], ...]
    if state == "queued":
        cursors, parsers, key_of = Cursors.of(info, "state: QUEUED"), (int32, parsed_time, UUID), _waiting_key
    else:
        cursors, parsers, key_of = Cursors.of(info), (parsed_time, UUID), _newest_key
    rows = await info.context.launch.jobs(
        queue=queue,
        state=state,
        limit=limit + 1,
        after=cursors.decode(after, *parsers),
        hidden=sorted(info.context.readable.hidden_entities),
    )
    return key_page(rows, limit, after, lambda last: cursors.encode(*key_of(last)))


class LaunchQueue(graphene.ObjectType):
    name = graphene.String(required=True)
    resource = graphene.Field(LaunchResource, required=True)
    resource_config = JSONValue(required=True)
    entities = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="The entities whose jobs it takes, those the caller may read (a private team's name is not shown "
        "to outsiders).",
    )
    takes_every_entity = graphene.Boolean(required=True, description="It names no entities: it takes every one's jobs.")
    created_at = graphene.DateTime(required=True)
    created_by = graphene.String(required=True)
    jobs = paged(
        lambda: JobPage,
        state=JobState(),
        description="Its waiting jobs in the order agents take them (state: QUEUED), or its jobs newest first.",
    )
    active_jobs = graphene.Int(
        required=True,
        description="How many of its jobs are queued, claimed or running (of the entities the caller may read).",
    )

    @staticmethod
    async def resolve_jobs(
        row: dict, info: graphene.ResolveInfo, first: int, after: str | None = None, state: Any = None
    ) -> dict:
        return await _jobs_page(info, row["name"], state, first, after)

    @staticmethod
    async def resolve_active_jobs(row: dict, info: graphene.ResolveInfo) -> int:
        return await info.context.launch.jobs_to_run(row["name"], sorted(info.context.readable.hidden_entities))

    @staticmethod
    def resolve_takes_every_entity(row: dict, info: graphene.ResolveInfo) -> bool:
        return not row["entities"]

    @staticmethod
    def resolve_entities(row: dict, info: graphene.ResolveInfo) -> list[str]:
        hidden = info.context.readable.hidden_entities
        return [entity for entity in row["entities"] if entity not in hidden]


class JobOutput(graphene.ObjectType):
    attempt = graphene.Int(required=True)
    stream = graphene.Field(OutputStream, required=True)
    text = graphene.String(required=True)
    captured_at = graphene.DateTime(required=True)


class Job(graphene.ObjectType):
    id = graphene.ID(required=True)
    queue = graphene.String(required=True)
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    priority = graphene.Int(required=True)
    time_limit_s = graphene.Int(description="seconds an attempt may run before it is stopped and the job failed")
    retry_of = graphene.ID(description="the ended job this one runs again")
    state = graphene.Field(JobState, required=True)
    source = JSONValue(required=True)
    config = JSONValue(required=True)
    overrides = JSONValue(required=True)
    triggered_by = JSONValue(description="automation_id, event_id, event_type when an automation enqueued it")
    attempt = graphene.Int(required=True)
    requeues = graphene.Int(required=True)
    agent_id = graphene.String()
    exit_code = graphene.Int()
    reason = graphene.String()
    run_ids = graphene.List(
        graphene.NonNull(graphene.String), required=True, description="the runs the job produced, oldest first"
    )
    enqueued_at = graphene.DateTime(required=True)
    enqueued_by = graphene.String(required=True)
    started_at = graphene.DateTime()
    finished_at = graphene.DateTime()
    detail = graphene.String(description="what the agent submitted (e.g. a Kubernetes manifest)")
    output = paged(
        lambda: JobOutputPage,
        first=100,
        description="Captured stdout and stderr, in chunks in the order printed (attempt by attempt); an agent keeps "
        "8 MiB of each stream of an attempt.",
    )

    @staticmethod
    def resolve_id(row: dict, info: graphene.ResolveInfo) -> str:
        return str(row["job_id"])

    @staticmethod
    async def resolve_source(row: dict, info: graphene.ResolveInfo) -> Any:
        return (await _with_contents(row, info))["source"]

    @staticmethod
    async def resolve_config(row: dict, info: graphene.ResolveInfo) -> Any:
        return (await _with_contents(row, info))["config"]

    @staticmethod
    async def resolve_overrides(row: dict, info: graphene.ResolveInfo) -> Any:
        return (await _with_contents(row, info))["overrides"]

    @staticmethod
    async def resolve_run_ids(row: dict, info: graphene.ResolveInfo) -> list[str]:
        """The runs its processes started (their environment names the job), and any its agent reported."""
        started = await info.context.reads.runs_of_job(str(row["job_id"]), info.context.readable)
        return list(dict.fromkeys([*started, *(row.get("run_ids") or [])]))

    @staticmethod
    async def resolve_output(row: dict, info: graphene.ResolveInfo, first: int, after: str | None = None) -> dict:
        limit, cursors = page_size(first), Cursors.of(info)
        rows = await info.context.launch.output(row["job_id"], limit + 1, cursors.decode(after, int32, UUID))
        return key_page(rows, limit, after, lambda last: cursors.encode(last["attempt"], last["event_id"]))


async def _with_contents(row: dict, info: graphene.ResolveInfo) -> dict:
    """`row` with its source, config and overrides: lists of jobs read them without (projections/launch_queries.py
    says why), and they are read here when a field asks."""
    if "config" not in row:
        contents = await info.context.job_contents.load(row["job_id"])
        for column in JOB_CONTENTS:
            row[column] = contents[column] if contents else {}
    return row


class ClaimedJob(graphene.ObjectType):
    """The answer to an agent's claim: the job, and the attempt it now owns."""

    job = graphene.Field(Job, required=True)
    attempt = graphene.Int(required=True)
    api_key = graphene.String(
        required=True,
        description="The key the attempt's code runs with, shown once: the agent's principal, limited to the job's "
        "entity (and the registry, where the agent's key may write there), revoked when the attempt ends.",
    )


JobPage: type[graphene.ObjectType] = page_of(Job)
JobOutputPage: type[graphene.ObjectType] = page_of(JobOutput)
LaunchQueuePage = page_of(LaunchQueue)


class LaunchQueryFields(graphene.ObjectType):
    launch_queues = paged(LaunchQueuePage, description="The queues, by name.")
    launch_queue = graphene.Field(LaunchQueue, name=graphene.String(required=True))
    launch_job = graphene.Field(Job, id=graphene.ID(required=True))
    launch_jobs = paged(
        JobPage,
        queue=graphene.String(),
        state=JobState(),
        description="Jobs newest first; waiting ones (state: QUEUED) in the order agents take them.",
    )
    waiting_jobs = paged(
        JobPage,
        first=10,
        queues=graphene.List(graphene.NonNull(graphene.String), required=True),
        entities=graphene.List(
            graphene.NonNull(graphene.String), description="of these entities only (an agent's --entity)"
        ),
        description="What an agent polls: queued jobs of these queues, by priority then age.",
    )

    @staticmethod
    async def resolve_launch_queues(
        root: Any, info: graphene.ResolveInfo, first: int, after: str | None = None
    ) -> dict:
        limit, cursors = page_size(first), Cursors.of(info)
        position = cursors.decode(after, str)
        rows = await info.context.launch.queues(after=position[0] if position else None, limit=limit + 1)
        return key_page(rows, limit, after, lambda last: cursors.encode(last["name"]))

    @staticmethod
    async def resolve_launch_queue(root: Any, info: graphene.ResolveInfo, name: str) -> dict | None:
        return await info.context.launch.queue(name)

    @staticmethod
    async def resolve_launch_job(root: Any, info: graphene.ResolveInfo, id: str) -> dict | None:
        return await info.context.jobs.load(parse_uuid("id", id))

    @staticmethod
    async def resolve_launch_jobs(
        root: Any,
        info: graphene.ResolveInfo,
        first: int,
        after: str | None = None,
        queue: str | None = None,
        state: Any = None,
    ) -> dict:
        return await _jobs_page(info, queue, state, first, after)

    @staticmethod
    async def resolve_waiting_jobs(
        root: Any,
        info: graphene.ResolveInfo,
        queues: list[str],
        first: int,
        after: str | None = None,
        entities: list[str] | None = None,
    ) -> dict:
        limit, cursors = page_size(first), Cursors.of(info)
        position = cursors.decode(after, int32, parsed_time, UUID)
        hidden = sorted(info.context.readable.hidden_entities)
        rows = await info.context.launch.next_waiting(
            queues, limit + 1, after=position, hidden=hidden, entities=entities
        )
        return key_page(rows, limit, after, lambda last: cursors.encode(*_waiting_key(last)))


class CreateLaunchQueueInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    resource = LaunchResource(description="LOCAL_PROCESS unless given")
    resource_config = JSONValue()
    entities = graphene.List(
        graphene.NonNull(graphene.String),
        description="the entities whose jobs it takes (their jobs run side by side on its agents); every entity's "
        "unless given",
    )


class SetLaunchQueueEntitiesInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    entities = graphene.List(graphene.NonNull(graphene.String), required=True, description="empty: every entity's jobs")


class DeleteLaunchQueueInput(graphene.InputObjectType):
    name = graphene.String(required=True)


class EnqueueJobInput(graphene.InputObjectType):
    queue = graphene.String(required=True)
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    from_run = graphene.String(description="a finished run's id: its code (commit + diff) and config")
    source = JSONValue(
        description='{"kind": "git", "git_remote", "git_commit", "entry_point": [...]} or {"kind": "image", ...}'
    )
    config = JSONValue()
    overrides = JSONValue(description='knobs that win over the run\'s config, e.g. {"lr": 0.01}')
    priority = graphene.Int(description="higher first; 0 unless given")
    time_limit_s = graphene.Int(
        description="seconds an attempt may run (at most 30 days): then its agent stops it (SIGTERM, SIGKILL 10 s "
        "later) and the job fails saying so; none unless given"
    )
    command_id = command_id_field()


class RetryJobInput(graphene.InputObjectType):
    id = graphene.ID(required=True)
    command_id = command_id_field()


class CancelJobInput(graphene.InputObjectType):
    id = graphene.ID(required=True)
    reason = graphene.String()
    command_id = command_id_field()


class AgentJobInput(graphene.InputObjectType):
    """What every report of an agent about its job names: the job and who claimed it."""

    id = graphene.ID(required=True)
    agent_id = graphene.String(required=True, description="your key's principal and a name: service:ci:host-1")


class ClaimJobInput(AgentJobInput):
    pass


class ReportJobStartedInput(AgentJobInput):
    attempt = graphene.Int(required=True)
    pid = graphene.Int()
    detail = graphene.String()


class CaptureJobOutputInput(AgentJobInput):
    attempt = graphene.Int(required=True)
    stream = OutputStream(required=True)
    text = graphene.String(required=True)
    command_id = command_id_field()


class ReportJobFinishedInput(AgentJobInput):
    attempt = graphene.Int(required=True)
    state = FinishedJobState(required=True)
    exit_code = graphene.Int()
    reason = graphene.String()
    run_ids = graphene.List(graphene.NonNull(graphene.String))
    command_id = command_id_field()


class ReturnJobInput(AgentJobInput):
    attempt = graphene.Int(required=True)
    reason = graphene.String(required=True)


class AgentHeartbeatInput(graphene.InputObjectType):
    agent_id = graphene.String(required=True)
    queues = graphene.List(graphene.NonNull(graphene.String), required=True)
    running_jobs = graphene.List(graphene.NonNull(graphene.ID))


def _job_command(kind: type, input: dict) -> Any:
    """A command about one job: its `id` is the job's, checked here like every id."""
    fields = {k: v for k, v in input.items() if k != "id"}
    return parse_command(kind, {"job_id": parse_uuid("id", input["id"]), **fields})


class LaunchMutations(graphene.ObjectType):
    create_launch_queue = graphene.Field(
        LaunchQueue, required=True, input=CreateLaunchQueueInput(required=True), description="Admins only."
    )
    set_launch_queue_entities = graphene.Field(
        LaunchQueue,
        required=True,
        input=SetLaunchQueueEntitiesInput(required=True),
        description="Admins only. Jobs already waiting of an entity left out wait, unclaimed, until it is named again.",
    )
    delete_launch_queue = graphene.Field(
        LaunchQueue,
        required=True,
        input=DeleteLaunchQueueInput(required=True),
        description="Admins only, once no job waits or runs in it and no automation launches into it. Its jobs keep "
        "its name, which may be created again. Returns the queue as it was.",
    )
    enqueue_job = graphene.Field(Job, required=True, input=EnqueueJobInput(required=True))
    cancel_job = graphene.Field(Job, required=True, input=CancelJobInput(required=True))
    retry_job = graphene.Field(
        Job,
        required=True,
        input=RetryJobInput(required=True),
        description="Runs an ended job (failed, cancelled, finished) again as it was enqueued: the new job.",
    )
    claim_job = graphene.Field(ClaimedJob, required=True, input=ClaimJobInput(required=True))
    report_job_started = graphene.Field(Job, required=True, input=ReportJobStartedInput(required=True))
    capture_job_output = graphene.Boolean(required=True, input=CaptureJobOutputInput(required=True))
    report_job_finished = graphene.Field(Job, required=True, input=ReportJobFinishedInput(required=True))
    return_job = graphene.Field(
        Job,
        required=True,
        input=ReturnJobInput(required=True),
        description="An agent that is stopping gives back an attempt it stopped: the job is queued again at once. An "
        "attempt no longer the agent's (finished, cancelled, requeued) is left as it is.",
    )
    agent_heartbeat = graphene.Boolean(required=True, input=AgentHeartbeatInput(required=True))

    @staticmethod
    async def resolve_create_launch_queue(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        fields = {**input, "queue": input["name"]}
        del fields["name"]
        await info.context.app.execute(parse_command(CreateQueue, fields), info.context.caller)
        return await info.context.launch.queue(input["name"])

    @staticmethod
    async def resolve_set_launch_queue_entities(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        command = parse_command(SetQueueEntities, {"queue": input["name"], "entities": input["entities"]})
        await info.context.app.execute(command, info.context.caller)
        return await info.context.launch.queue(input["name"])

    @staticmethod
    async def resolve_delete_launch_queue(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        command = parse_command(DeleteQueue, {"queue": input["name"]})
        queue = await info.context.launch.queue(input["name"])
        await info.context.app.execute(command, info.context.caller)
        if queue is None:  # created between the read above and its deletion: nothing of it to show
            raise NotFound(f"queue {quoted(input['name'])} does not exist")
        return queue

    @staticmethod
    async def resolve_enqueue_job(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        accepted = await info.context.app.execute(parse_command(EnqueueJob, input), info.context.caller)
        return await _visible_job(info, accepted.subject_id)

    @staticmethod
    async def resolve_cancel_job(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        command = _job_command(CancelJob, input)
        await info.context.app.execute(command, info.context.caller)
        return await _visible_job(info, command.job_id)

    @staticmethod
    async def resolve_retry_job(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        accepted = await info.context.app.execute(_job_command(RetryJob, input), info.context.caller)
        return await _visible_job(info, accepted.subject_id)

    @staticmethod
    async def resolve_claim_job(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        command = _job_command(ClaimJob, input)
        accepted = await info.context.app.execute(command, info.context.caller)
        claimed: Claimed = accepted.subject_id
        job = await _visible_job(info, command.job_id)
        if job["agent_id"] != command.agent_id or job["attempt"] != claimed.attempt:
            raise Conflict(f"job {command.job_id} was claimed by {job['agent_id']} first")
        return {"job": job, "attempt": claimed.attempt, "api_key": claimed.api_key}

    @staticmethod
    async def resolve_report_job_started(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        command = _job_command(ReportJobStarted, input)
        await info.context.app.execute(command, info.context.caller)
        return await _visible_job(info, command.job_id)

    @staticmethod
    async def resolve_capture_job_output(root: Any, info: graphene.ResolveInfo, input: dict) -> bool:
        await info.context.app.execute(_job_command(CaptureJobOutput, input), info.context.caller)
        return True

    @staticmethod
    async def resolve_report_job_finished(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        command = _job_command(ReportJobFinished, input)
        await info.context.app.execute(command, info.context.caller)
        return await _visible_job(info, command.job_id)

    @staticmethod
    async def resolve_return_job(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        command = _job_command(ReturnJob, input)
        await info.context.app.execute(command, info.context.caller)
        return await _visible_job(info, command.job_id)

    @staticmethod
    async def resolve_agent_heartbeat(root: Any, info: graphene.ResolveInfo, input: dict) -> bool:
        await info.context.app.execute(parse_command(Heartbeat, input), info.context.caller)
        return True


async def _visible_job(info: graphene.ResolveInfo, job_id: UUID) -> dict:
    job = await info.context.launch.job(job_id)
    if job is None:
        raise NotFound(f"job {job_id} is not visible")
    return job
