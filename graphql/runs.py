"""Runs: queries and mutations."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import graphene
from graphene.types.generic import GenericScalar

from modelreg.errors import NotFound
from modelreg.graphql.errors import reports_errors
from modelreg.graphql.inputs import parse_command
from modelreg.graphql.launch import Job
from modelreg.services.commands import FinishRun, LogMetrics, RecordSync, StartRun


class MetricPoint(graphene.ObjectType):
    key = graphene.String(required=True)
    step = graphene.Int(required=True)
    value = graphene.Float(required=True)


class Run(graphene.ObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    name = graphene.String()
    job_type = graphene.String()
    config = GenericScalar(required=True)
    environment = GenericScalar(required=True)
    state = graphene.String(required=True)
    exit_code = graphene.Int()
    summary = GenericScalar(required=True)
    started_at = graphene.DateTime(required=True)
    started_by = graphene.String(required=True)
    finished_at = graphene.DateTime()
    synced_at = graphene.DateTime(description="when a run recorded offline was uploaded (its other times are when things happened)")
    metrics = graphene.List(graphene.NonNull(MetricPoint), required=True, key=graphene.String())
    launched_by = graphene.Field(
        Job, description="the Launch job that started this run (its triggeredBy names the automation and the event)"
    )

    @staticmethod
    async def resolve_launched_by(row: dict, info: graphene.ResolveInfo) -> dict | None:
        launch = (row["environment"] or {}).get("launch") or {}
        try:
            job_id = UUID(launch.get("job_id") or "")
        except ValueError:
            return None
        return await info.context.launch.job(job_id)

    @staticmethod
    async def resolve_metrics(row: dict, info: graphene.ResolveInfo, key: str | None = None) -> list[dict]:
        return await info.context.reads.metrics(row["entity"], row["project"], row["run_id"], key)


class RunQueries(graphene.ObjectType):
    run = graphene.Field(
        Run, entity=graphene.String(required=True), project=graphene.String(required=True), run_id=graphene.String(required=True)
    )

    @staticmethod
    async def resolve_run(root: Any, info: graphene.ResolveInfo, entity: str, project: str, run_id: str) -> dict | None:
        return await info.context.reads.run(entity, project, run_id)


class StartRunInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    name = graphene.String()
    job_type = graphene.String()
    config = GenericScalar()
    environment = GenericScalar()
    command_id = graphene.ID(description="a client's id for this command (UUID): sent again, it changes nothing")
    occurred_at = graphene.DateTime(description="when it happened on the client (offline runs), with a zone")


class FinishRunInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    state = graphene.String()
    exit_code = graphene.Int()
    summary = GenericScalar()
    command_id = graphene.ID(description="a client's id for this command (UUID): sent again, it changes nothing")
    occurred_at = graphene.DateTime(description="when it happened on the client (offline runs), with a zone")


async def _run_after(info: graphene.ResolveInfo, command: StartRun | FinishRun | RecordSync) -> dict:
    await info.context.app.execute(command, info.context.caller)
    run = await info.context.reads.run(command.entity, command.project, command.run_id)
    if run is None:
        raise NotFound(f"run {command.entity}/{command.project}/{command.run_id} is not visible")
    return run


class RecordSyncInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    command_id = graphene.ID(description="derived from the run's start command, so that a repeated sync records it once")
    commands = graphene.Int(required=True)
    first_occurred_at = graphene.DateTime()
    last_occurred_at = graphene.DateTime()
    recorded_on = graphene.String()


class MetricRowInput(graphene.InputObjectType):
    step = graphene.Int(required=True)
    values = GenericScalar(required=True, description='{"loss": 0.1, "acc": 0.9}')


class RunMutations(graphene.ObjectType):
    start_run = graphene.Field(Run, required=True, input=StartRunInput(required=True))
    finish_run = graphene.Field(Run, required=True, input=FinishRunInput(required=True))
    log_metrics = graphene.Int(
        required=True,
        entity=graphene.String(required=True),
        project=graphene.String(required=True),
        run_id=graphene.String(required=True),
        rows=graphene.List(graphene.NonNull(MetricRowInput), required=True),
        command_id=graphene.ID(description="a client's id for this command (UUID): sent again, it changes nothing"),
        occurred_at=graphene.DateTime(description="when it was logged on the client (offline runs), with a zone"),
        description="Append metric rows to a run's history; returns how many rows were logged.",
    )

    record_offline_sync = graphene.Field(
        Run,
        required=True,
        input=RecordSyncInput(required=True),
        description="Say that a run recorded offline was uploaded (`modelreg sync` sends it last).",
    )

    @staticmethod
    @reports_errors
    async def resolve_record_offline_sync(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        return await _run_after(info, parse_command(RecordSync, input))

    @staticmethod
    @reports_errors
    async def resolve_log_metrics(root: Any, info: graphene.ResolveInfo, **fields: Any) -> int:
        fields["rows"] = [dict(row) for row in fields["rows"]]
        accepted = await info.context.app.execute(parse_command(LogMetrics, fields), info.context.caller)
        return accepted.subject_id

    @staticmethod
    @reports_errors
    async def resolve_start_run(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        return await _run_after(info, parse_command(StartRun, input))

    @staticmethod
    @reports_errors
    async def resolve_finish_run(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        return await _run_after(info, parse_command(FinishRun, input))

