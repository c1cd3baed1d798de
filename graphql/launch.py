"""Launch: queues, jobs (enqueue, cancel, watch) and the agent protocol (claim, report, heartbeat)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import graphene
from graphene.types.generic import GenericScalar

from modelreg.errors import Conflict, InvalidInput, NotFound
from modelreg.graphql.errors import reports_errors
from modelreg.graphql.inputs import parse_command
from modelreg.graphql.pages import page_size
from modelreg.services.commands.launch_commands import (
    CancelJob,
    CaptureJobOutput,
    ClaimJob,
    CreateQueue,
    EnqueueJob,
    Heartbeat,
    ReportJobFinished,
    ReportJobStarted,
)


def parse_uuid(value: str, what: str = "job id") -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a {what} (a UUID)") from None


class LaunchQueue(graphene.ObjectType):
    name = graphene.String(required=True)
    resource = graphene.String(required=True, description="local-process, docker or kubernetes")
    resource_config = GenericScalar(required=True)
    created_at = graphene.DateTime(required=True)
    created_by = graphene.String(required=True)
    jobs = graphene.List(
        graphene.NonNull(lambda: Job), required=True, state=graphene.String(), first=graphene.Int(default_value=50)
    )

    @staticmethod
    @reports_errors
    async def resolve_jobs(row: dict, info: graphene.ResolveInfo, first: int, state: str | None = None) -> list[dict]:
        return await info.context.launch.jobs(queue=row["name"], state=state, limit=page_size(first))


class JobOutput(graphene.ObjectType):
    attempt = graphene.Int(required=True)
    stream = graphene.String(required=True)
    text = graphene.String(required=True)
    captured_at = graphene.DateTime(required=True)


class Job(graphene.ObjectType):
    id = graphene.ID(required=True)
    queue = graphene.String(required=True)
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    priority = graphene.Int(required=True)
    state = graphene.String(required=True, description="queued, claimed, running, finished, failed or cancelled")
    source = GenericScalar(required=True)
    config = GenericScalar(required=True)
    overrides = GenericScalar(required=True)
    triggered_by = GenericScalar(description="automation_id, event_id, event_type when an automation enqueued it")
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
    output = graphene.List(graphene.NonNull(JobOutput), required=True, description="captured stdout and stderr")

    @staticmethod
    def resolve_id(row: dict, info: graphene.ResolveInfo) -> str:
        return str(row["job_id"])

    @staticmethod
    async def resolve_run_ids(row: dict, info: graphene.ResolveInfo) -> list[str]:
        """The runs its processes started (their environment names the job), and any its agent reported."""
        started = await info.context.reads.runs_of_job(str(row["job_id"]))
        return list(dict.fromkeys([*started, *(row.get("run_ids") or [])]))

    @staticmethod
    async def resolve_output(row: dict, info: graphene.ResolveInfo) -> list[dict]:
        return await info.context.launch.output(row["job_id"])


class ClaimedJob(graphene.ObjectType):
    """The answer to an agent's claim: the job, and the attempt it now owns."""

    job = graphene.Field(Job, required=True)
    attempt = graphene.Int(required=True)


class LaunchQueryFields(graphene.ObjectType):
    launch_queues = graphene.List(graphene.NonNull(LaunchQueue), required=True)
    launch_queue = graphene.Field(LaunchQueue, name=graphene.String(required=True))
    launch_job = graphene.Field(Job, id=graphene.ID(required=True))
    launch_jobs = graphene.List(
        graphene.NonNull(Job),
        required=True,
        queue=graphene.String(),
        state=graphene.String(),
        first=graphene.Int(default_value=50),
    )
    waiting_jobs = graphene.List(
        graphene.NonNull(Job),
        required=True,
        queues=graphene.List(graphene.NonNull(graphene.String), required=True),
        first=graphene.Int(default_value=10),
        description="What an agent polls: queued jobs of these queues, by priority then age.",
    )

    @staticmethod
    async def resolve_launch_queues(root: Any, info: graphene.ResolveInfo) -> list[dict]:
        return await info.context.launch.queues()

    @staticmethod
    async def resolve_launch_queue(root: Any, info: graphene.ResolveInfo, name: str) -> dict | None:
        return await info.context.launch.queue(name)

    @staticmethod
    @reports_errors
    async def resolve_launch_job(root: Any, info: graphene.ResolveInfo, id: str) -> dict | None:
        return await info.context.launch.job(parse_uuid(id))

    @staticmethod
    @reports_errors
    async def resolve_launch_jobs(
        root: Any, info: graphene.ResolveInfo, first: int, queue: str | None = None, state: str | None = None
    ) -> list[dict]:
        return await info.context.launch.jobs(queue=queue, state=state, limit=page_size(first))

    @staticmethod
    @reports_errors
    async def resolve_waiting_jobs(root: Any, info: graphene.ResolveInfo, queues: list[str], first: int) -> list[dict]:
        return await info.context.launch.next_waiting(queues, page_size(first))


class LaunchMutations(graphene.ObjectType):
    create_launch_queue = graphene.Field(
        LaunchQueue,
        required=True,
        name=graphene.String(required=True),
        resource=graphene.String(default_value="local-process"),
        resource_config=GenericScalar(),
        description="Admins only.",
    )
    enqueue_job = graphene.Field(
        Job,
        required=True,
        queue=graphene.String(required=True),
        entity=graphene.String(required=True),
        project=graphene.String(required=True),
        from_run=graphene.String(description="a finished run's id: its code (commit + diff) and config"),
        source=GenericScalar(
            description='{"kind": "git", "git_remote", "git_commit", "entry_point": [...]} or {"kind": "image", ...}'
        ),
        config=GenericScalar(),
        overrides=GenericScalar(description='knobs that win over the run\'s config, e.g. {"lr": 0.01}'),
        priority=graphene.Int(default_value=0),
    )
    cancel_job = graphene.Field(Job, required=True, id=graphene.ID(required=True), reason=graphene.String())
    claim_job = graphene.Field(
        ClaimedJob,
        required=True,
        id=graphene.ID(required=True),
        agent_id=graphene.String(required=True, description="your key's principal and a name: service:ci:host-1"),
    )
    report_job_started = graphene.Field(
        Job,
        required=True,
        id=graphene.ID(required=True),
        agent_id=graphene.String(required=True),
        attempt=graphene.Int(required=True),
        pid=graphene.Int(),
        detail=graphene.String(),
    )
    capture_job_output = graphene.Boolean(
        required=True,
        id=graphene.ID(required=True),
        agent_id=graphene.String(required=True),
        attempt=graphene.Int(required=True),
        stream=graphene.String(required=True),
        text=graphene.String(required=True),
    )
    report_job_finished = graphene.Field(
        Job,
        required=True,
        id=graphene.ID(required=True),
        agent_id=graphene.String(required=True),
        attempt=graphene.Int(required=True),
        state=graphene.String(required=True),
        exit_code=graphene.Int(),
        reason=graphene.String(),
        run_ids=graphene.List(graphene.NonNull(graphene.String)),
    )
    agent_heartbeat = graphene.Boolean(
        required=True,
        agent_id=graphene.String(required=True),
        queues=graphene.List(graphene.NonNull(graphene.String), required=True),
        running_jobs=graphene.List(graphene.NonNull(graphene.ID)),
    )

    @staticmethod
    @reports_errors
    async def resolve_create_launch_queue(
        root: Any, info: graphene.ResolveInfo, name: str, resource: str, resource_config: Any = None
    ) -> dict:
        command = parse_command(CreateQueue, {"queue": name, "resource": resource, "resource_config": resource_config})
        await info.context.app.execute(command, info.context.caller)
        return await info.context.launch.queue(name)  # type: ignore[return-value]

    @staticmethod
    @reports_errors
    async def resolve_enqueue_job(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        accepted = await info.context.app.execute(parse_command(EnqueueJob, fields), info.context.caller)
        return await _visible_job(info, accepted.subject_id)

    @staticmethod
    @reports_errors
    async def resolve_cancel_job(root: Any, info: graphene.ResolveInfo, id: str, reason: str | None = None) -> dict:
        await info.context.app.execute(
            parse_command(CancelJob, {"job_id": parse_uuid(id), "reason": reason}), info.context.caller
        )
        return await _visible_job(info, parse_uuid(id))

    @staticmethod
    @reports_errors
    async def resolve_claim_job(root: Any, info: graphene.ResolveInfo, id: str, agent_id: str) -> dict:
        accepted = await info.context.app.execute(
            parse_command(ClaimJob, {"job_id": parse_uuid(id), "agent_id": agent_id}), info.context.caller
        )
        job = await _visible_job(info, parse_uuid(id))
        if job["agent_id"] != agent_id or job["attempt"] != accepted.subject_id:
            raise Conflict(f"job {id} was claimed by {job['agent_id']} first")
        return {"job": job, "attempt": accepted.subject_id}

    @staticmethod
    @reports_errors
    async def resolve_report_job_started(root: Any, info: graphene.ResolveInfo, id: str, **fields: Any) -> dict:
        await info.context.app.execute(
            parse_command(ReportJobStarted, {"job_id": parse_uuid(id), **fields}), info.context.caller
        )
        return await _visible_job(info, parse_uuid(id))

    @staticmethod
    @reports_errors
    async def resolve_capture_job_output(root: Any, info: graphene.ResolveInfo, id: str, **fields: Any) -> bool:
        await info.context.app.execute(
            parse_command(CaptureJobOutput, {"job_id": parse_uuid(id), **fields}), info.context.caller
        )
        return True

    @staticmethod
    @reports_errors
    async def resolve_report_job_finished(root: Any, info: graphene.ResolveInfo, id: str, **fields: Any) -> dict:
        await info.context.app.execute(
            parse_command(ReportJobFinished, {"job_id": parse_uuid(id), **fields}), info.context.caller
        )
        return await _visible_job(info, parse_uuid(id))

    @staticmethod
    @reports_errors
    async def resolve_agent_heartbeat(root: Any, info: graphene.ResolveInfo, **fields: Any) -> bool:
        await info.context.app.execute(parse_command(Heartbeat, fields), info.context.caller)
        return True


async def _visible_job(info: graphene.ResolveInfo, job_id: UUID) -> dict:
    job = await info.context.launch.job(job_id)
    if job is None:
        raise NotFound(f"job {job_id} is not visible")
    return job
