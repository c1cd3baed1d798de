"""Runs: queries and mutations."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import graphene
from pydantic import BaseModel

from modelreg.errors import InvalidInput, NotFound
from modelreg.graphql.enums import AlertLevel, FinishedRunState, ProjectOrder, RunState, value_of
from modelreg.graphql.inputs import command_id_field, parse_command
from modelreg.graphql.json_value import JSONValue
from modelreg.graphql.launch import Job
from modelreg.graphql.metrics import (
    HISTORY_ARGUMENTS,
    MAX_POINTS_READ,
    MetricCurve,
    MetricHistoryPage,
    MetricHistorySummary,
    MetricKeyPage,
    resolve_history,
    resolve_history_summary,
    resolve_metric_points,
    resolve_scan_history,
)
from modelreg.graphql.pages import Cursors, key_page, page_of, page_size, paged
from modelreg.graphql.references import as_uuid
from modelreg.projections.metric_queries import MetricQueries
from modelreg.projections.registry_queries import RUN_CONTENTS, RunFilters
from modelreg.projections.run_order import RunOrder, order_by
from modelreg.projections.timestamps import parsed_time
from modelreg.services.commands.commands import (
    DescribeRun,
    FinishRun,
    LogMetrics,
    RaiseAlert,
    RecordRunHeartbeat,
    RecordSync,
    ResumeRun,
    StartRun,
    UpdateRunConfig,
    UpdateRunSummary,
)


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
    config = JSONValue(required=True)
    environment = JSONValue(required=True)
    state = graphene.Field(RunState, required=True)
    exit_code = graphene.Int()
    summary = JSONValue(required=True)
    started_at = graphene.DateTime(required=True)
    started_by = graphene.String(required=True)
    finished_at = graphene.DateTime()
    heartbeat_at = graphene.DateTime(
        required=True,
        description="when it was last heard from: its end, its client's last heartbeat or metric batch, or its start",
    )
    synced_at = graphene.DateTime(description="when a run recorded offline was uploaded")
    started_offline_at = graphene.DateTime(description="a run recorded offline: when its client says it started")
    finished_offline_at = graphene.DateTime(description="a run recorded offline: when its client says it finished")
    metrics = graphene.List(
        graphene.NonNull(MetricPoint),
        required=True,
        key=graphene.String(),
        resolver=resolve_metric_points,
        description="every point (of one metric); for long runs use history or scanHistory",
    )
    history = graphene.List(
        graphene.NonNull(MetricCurve),
        required=True,
        samples=graphene.Int(default_value=1000),
        by_step=graphene.Boolean(
            default_value=False,
            description="sample the run's steps instead of each curve: at most `samples` steps chosen once for all "
            "the metrics (with `keys`: among the steps where every one has a point), each curve at those of them "
            "where it has a point; rows by step, as W&B's run.history() reads them",
        ),
        **HISTORY_ARGUMENTS,
        resolver=resolve_history,
        description="each metric's curve, sampled: at most `samples` points spread evenly over it, its first and "
        "last included (over every 32nd step when that gives enough)",
    )
    scan_history = graphene.Field(
        MetricHistoryPage,
        required=True,
        first=graphene.Int(default_value=1000),
        after=graphene.String(),
        **HISTORY_ARGUMENTS,
        resolver=resolve_scan_history,
        description="every point, one row per step in step order, `first` steps a page",
    )
    last_history_step = graphene.Int(description="the highest step it logged (a resumed run goes on after it)")
    metric_count = graphene.Int(
        required=True,
        description="how many metrics it logged: a scanHistory page of `first` steps of all of them reads up to "
        f"`first` x metricCount points, which may be at most {MAX_POINTS_READ:,}",
    )
    metric_keys = paged(
        MetricKeyPage,
        first=100,
        search=graphene.String(description="only the metrics whose name holds this, in any case"),
        description="the names of the metrics it logged, by name: the keys to ask history for, a page at a time",
    )
    history_summary = graphene.List(
        graphene.NonNull(MetricHistorySummary),
        required=True,
        resolver=resolve_history_summary,
        description="each metric's last value, min, max and sum over its whole history (at most 1,000 metrics, by "
        "name), read from a few numbers per chunk: what a resumed run's summary goes on from",
    )
    notes = graphene.String()
    tags = graphene.List(graphene.NonNull(graphene.String), required=True)
    group = graphene.String()
    logged_artifacts = paged(
        "modelreg.graphql.artifacts.ArtifactVersionPage",
        description="the versions this run logged (its outputs), oldest first",
    )
    used_artifacts = paged(
        "modelreg.graphql.artifacts.ArtifactVersionPage",
        description="the versions this run used (its inputs), in the order it used them",
    )
    launched_by = graphene.Field(
        Job, description="the Launch job that started this run (its triggeredBy names the automation and the event)"
    )

    @staticmethod
    def resolve_heartbeat_at(row: dict, info: graphene.ResolveInfo) -> datetime:
        heard = [row.get("finished_at"), row.get("last_heartbeat_at"), row["started_at"]]
        return max(at for at in heard if at is not None)

    @staticmethod
    async def resolve_config(row: dict, info: graphene.ResolveInfo) -> Any:
        return (await _with_contents(row, info))["config"]

    @staticmethod
    async def resolve_summary(row: dict, info: graphene.ResolveInfo) -> Any:
        return (await _with_contents(row, info))["summary"]

    @staticmethod
    async def resolve_environment(row: dict, info: graphene.ResolveInfo) -> Any:
        return (await _with_contents(row, info))["environment"]

    @staticmethod
    async def resolve_launched_by(row: dict, info: graphene.ResolveInfo) -> dict | None:
        if "launch_job_id" in row:  # a listed run: its environment left out, the job it names kept
            job_id = as_uuid(row["launch_job_id"])
        else:
            launch = (row["environment"] or {}).get("launch") or {}
            job_id = as_uuid(launch.get("job_id"))  # the client's record of its environment: no id, no job
        return await info.context.jobs.load(job_id) if job_id else None

    @staticmethod
    async def resolve_last_history_step(row: dict, info: graphene.ResolveInfo) -> int | None:
        return await MetricQueries(info.context.reads.pool).last_step((row["entity"], row["project"], row["run_id"]))

    @staticmethod
    async def resolve_metric_count(row: dict, info: graphene.ResolveInfo) -> int:
        return await MetricQueries(info.context.reads.pool).metric_count((row["entity"], row["project"], row["run_id"]))

    @staticmethod
    async def resolve_metric_keys(
        row: dict, info: graphene.ResolveInfo, first: int, after: str | None = None, search: str | None = None
    ) -> dict:
        limit, cursors = page_size(first), Cursors.of(info)
        position = cursors.decode(after, str)
        keys = await MetricQueries(info.context.reads.pool).keys(
            (row["entity"], row["project"], row["run_id"]), limit + 1, position[0] if position else None, search or None
        )
        items = keys[:limit]
        return {
            "items": items,
            "end_cursor": cursors.encode(items[-1]) if items else after,
            "has_next_page": len(keys) > limit,
        }

    @staticmethod
    def resolve_tags(row: dict, info: graphene.ResolveInfo) -> list[str]:
        return row.get("tags") or []

    @staticmethod
    def resolve_group(row: dict, info: graphene.ResolveInfo) -> str | None:
        return row.get("group_name")

    @staticmethod
    async def resolve_logged_artifacts(row: dict, info: graphene.ResolveInfo, first: int, after: str | None = None):
        return await _run_artifacts(row, info, first, after, used=False)

    @staticmethod
    async def resolve_used_artifacts(row: dict, info: graphene.ResolveInfo, first: int, after: str | None = None):
        return await _run_artifacts(row, info, first, after, used=True)


async def _with_contents(row: dict, info: graphene.ResolveInfo) -> dict:
    """`row` with its config, summary and environment: lists and lookups by key read runs without them
    (projections/registry_queries.py says why), and they are read here when a field asks."""
    if "config" not in row:
        contents = await info.context.run_contents.load((row["entity"], row["project"], row["run_id"]))
        for column in RUN_CONTENTS:
            row[column] = contents[column] if contents else {}
    return row


async def _run_artifacts(row: dict, info: graphene.ResolveInfo, first: int, after: str | None, used: bool) -> dict:
    limit, cursors = page_size(first), Cursors.of(info)
    position = cursors.decode(after, parsed_time, UUID)
    rows = await info.context.reads.run_artifacts_page(
        row["entity"],
        row["project"],
        row["run_id"],
        used=used,
        after=position,
        limit=limit + 1,
        readable=info.context.readable,
    )
    return key_page(rows, limit, after, lambda last: cursors.encode(last["at"], last["id"]))


async def _total_count(page: dict, info: graphene.ResolveInfo) -> int:
    if page["first_page"] and not page["has_next_page"]:
        return len(page["items"])  # all of them are here: a search that finds a few needs no second pass
    try:
        async with _search_turn(info):
            return await info.context.reads.runs_count(page["filters"])
    except asyncpg.InvalidRegularExpressionError as exc:
        raise InvalidInput(f"a $regex of the filters is not a valid regular expression: {exc}") from None
    except TimeoutError:
        raise InvalidInput(SEARCH_TOO_LONG.format(info.context.reads.search_timeout_s)) from None


def _search_turn(info: graphene.ResolveInfo) -> contextlib.AbstractAsyncContextManager[None]:
    """A turn among the caller's runs searches (projections/search.py, SearchSlots): its aliased searches, or
    requests side by side, hold two of the pool's connections at most."""
    caller = info.context.caller
    return info.context.reads.run_searches.of(str(caller.actor) if caller is not None else "")


SEARCH_TOO_LONG = (
    "the runs search ran over {:g} s and was stopped: narrow it (entity, project, fewer or simpler filters; "
    "a $regex with backreferences can take minutes)"
)

RunPage = page_of(
    Run,
    total_count=graphene.Int(
        required=True, description="how many runs match, on every page together (counted only when asked)"
    ),
    resolve_total_count=staticmethod(_total_count),
)


class Project(graphene.ObjectType):
    """An entity's project, as its runs show it."""

    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_count = graphene.Int(required=True)
    last_activity_at = graphene.DateTime(required=True, description="when its last run started or finished")
    job_types = graphene.List(
        graphene.NonNull(graphene.String), required=True, description="the job types of its runs, for a filter"
    )
    private = graphene.Boolean(
        required=True, description="its entity is private: only principals with a grant there read it (setVisibility)"
    )

    @staticmethod
    def resolve_private(row: dict, info: graphene.ResolveInfo) -> bool:
        return f"entity:{row['entity']}" in info.context.caller.private

    @staticmethod
    async def resolve_job_types(row: dict, info: graphene.ResolveInfo) -> list[str]:
        return await info.context.reads.job_types(row["entity"], row["project"])


ProjectPage = page_of(Project)


class RunQueries(graphene.ObjectType):
    run = graphene.Field(
        Run,
        entity=graphene.String(required=True),
        project=graphene.String(required=True),
        run_id=graphene.String(required=True),
    )
    projects = paged(
        ProjectPage,
        entity=graphene.String(description="only this entity's projects"),
        order=ProjectOrder(default_value="last_activity"),
        description="Every project with runs, the most recently active first (order: NAME to walk them all: a "
        "project active between pages moves to the front, past the cursor).",
    )
    project = graphene.Field(Project, entity=graphene.String(required=True), project=graphene.String(required=True))
    runs = paged(
        RunPage,
        entity=graphene.String(required=True),
        project=graphene.String(required=True),
        search=graphene.String(description="part of the run id, name or job type, in any case"),
        state=RunState(),
        job_type=graphene.String(),
        filters=JSONValue(
            description='W&B\'s MongoDB-style filters: {"config.lr": {"$gt": 0.01}, "tags": {"$in": ["a"]}}, '
            "with $and/$or/$nor/$not, on config.*, summary_metrics.*, tags, state, display_name, name, group, "
            "jobType, createdAt"
        ),
        order=graphene.String(description="-created_at (default), +summary_metrics.acc, config.lr, display_name..."),
        description="A project's runs, newest first (by when they started), a page at a time.",
    )

    @staticmethod
    async def resolve_run(root: Any, info: graphene.ResolveInfo, entity: str, project: str, run_id: str) -> dict | None:
        return await info.context.runs.load((entity, project, run_id))

    @staticmethod
    async def resolve_projects(
        root: Any,
        info: graphene.ResolveInfo,
        first: int,
        order: Any,
        after: str | None = None,
        entity: str | None = None,
    ) -> dict:
        limit, by_name = page_size(first), value_of(order) == "name"
        parsers: tuple[Callable[[str], Any], ...]
        key: tuple[str, ...]
        if by_name:
            cursors, parsers, key = Cursors.of(info, "order: NAME"), (str, str), ("entity", "project")
        else:
            cursors, parsers, key = Cursors.of(info), (parsed_time, str, str), ("last_activity_at", "entity", "project")
        rows = await info.context.reads.projects(
            entity or None,
            by_name=by_name,
            after=cursors.decode(after, *parsers),
            limit=limit + 1,
            hidden=sorted(info.context.readable.hidden_entities),
        )
        return key_page(rows, limit, after, lambda last: cursors.encode(*(last[column] for column in key)))

    @staticmethod
    async def resolve_project(root: Any, info: graphene.ResolveInfo, entity: str, project: str) -> dict | None:
        if not info.context.readable.entity(entity):
            return None
        found = await info.context.reads.projects(entity, project)
        return found[0] if found else None

    @staticmethod
    async def resolve_runs(
        root: Any,
        info: graphene.ResolveInfo,
        entity: str,
        project: str,
        first: int,
        after: str | None = None,
        search: str | None = None,
        state: Any = None,
        job_type: str | None = None,
        filters: Any = None,
        order: str | None = None,
    ) -> dict:
        limit = page_size(first)
        if filters is not None and not isinstance(filters, dict):
            raise InvalidInput('filters is an object, e.g. {"config.lr": {"$gt": 0.01}}')
        run_filters = RunFilters(
            entity, project, (search or "").strip() or None, value_of(state), job_type or None, query=filters or None
        )
        run_filters.where()  # a malformed filter is refused before any query
        if not info.context.readable.entity(entity):
            return {
                "items": [],
                "end_cursor": after,
                "has_next_page": False,
                "filters": run_filters,
                "first_page": True,
            }
        ordering = order_by(order)
        reads = info.context.reads
        try:
            async with _search_turn(info):
                if ordering is not None:
                    found = await _runs_in_order(info, run_filters, ordering, limit, after)
                    return {**found, "filters": run_filters, "first_page": after is None}
                cursors = Cursors.of(info)
                before = cursors.decode(after, parsed_time, str)
                rows = await reads.runs_page(run_filters, before=before, limit=limit + 1)
        except asyncpg.InvalidRegularExpressionError as exc:
            raise InvalidInput(f"a $regex of the filters is not a valid regular expression: {exc}") from None
        except TimeoutError:
            raise InvalidInput(SEARCH_TOO_LONG.format(info.context.reads.search_timeout_s)) from None
        found = key_page(rows, limit, after, lambda last: cursors.encode(last["started_at"], last["run_id"]))
        return {**found, "filters": run_filters, "first_page": after is None}


async def _runs_in_order(
    info: graphene.ResolveInfo, filters: RunFilters, ordering: RunOrder, limit: int, after: str | None
) -> dict:
    """A page of runs in a W&B order, after where the previous one ended (projections/run_order.py): its cursors
    name the order, whose sort value they carry."""
    cursors = Cursors.of(info, f"order: {ordering.name}")
    parts = cursors.decode(after, str, str, str)
    try:
        position = ordering.position(*parts) if parts else None
    except ValueError:
        raise cursors.refused(after or "") from None
    rows = await info.context.reads.runs_page_ordered(filters, ordering, after=position, limit=limit + 1)
    return key_page(rows, limit, after, lambda last: cursors.encode(*ordering.cursor_parts(last)))


class StartRunInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    name = graphene.String()
    job_type = graphene.String()
    config = JSONValue()
    environment = JSONValue()
    command_id = command_id_field()
    occurred_at = graphene.DateTime(description="when it happened on the client (offline runs), with a zone")
    notes = graphene.String()
    tags = graphene.List(graphene.NonNull(graphene.String))
    group = graphene.String()


class FinishRunInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    state = FinishedRunState(description="FINISHED unless given")
    exit_code = graphene.Int()
    summary = JSONValue()
    command_id = command_id_field()
    occurred_at = graphene.DateTime(description="when it happened on the client (offline runs), with a zone")


async def _run_after(info: graphene.ResolveInfo, command: Any) -> dict:
    await info.context.app.execute(command, info.context.caller)
    run = await info.context.reads.run(command.entity, command.project, command.run_id)
    if run is None:
        raise NotFound(f"run {command.entity}/{command.project}/{command.run_id} is not visible")
    return run


class RecordSyncInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    command_id = graphene.ID(
        description="derived from the run's start command, so that a repeated sync records it once"
    )
    commands = graphene.Int(required=True)
    first_occurred_at = graphene.DateTime()
    last_occurred_at = graphene.DateTime()
    recorded_on = graphene.String()


class RunChangesInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    changes = JSONValue(description='the keys set and their new values: {"lr": 0.02}')
    removed = graphene.List(graphene.NonNull(graphene.String), description="the keys removed")
    command_id = command_id_field()
    occurred_at = graphene.DateTime(description="when it happened on the client (offline runs), with a zone")


class DescribeRunInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    name = graphene.String()
    notes = graphene.String()
    tags = graphene.List(graphene.NonNull(graphene.String), description="replace the run's tags")
    group = graphene.String()
    command_id = command_id_field()
    occurred_at = graphene.DateTime(description="when it happened on the client (offline runs), with a zone")


class RunHeartbeatInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)


async def _resolve_run_heartbeat(root: Any, info: graphene.ResolveInfo, input: dict) -> bool:
    await info.context.app.execute(parse_command(RecordRunHeartbeat, input), info.context.caller)
    return True


class ResumeRunInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    command_id = command_id_field()
    occurred_at = graphene.DateTime(description="when it happened on the client (offline runs), with a zone")


class RaiseAlertInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    title = graphene.String(required=True)
    text = graphene.String()
    level = AlertLevel()
    command_id = command_id_field()
    occurred_at = graphene.DateTime(description="when it happened on the client (offline runs), with a zone")


class MetricRowInput(graphene.InputObjectType):
    step = graphene.Int(required=True)
    values = JSONValue(required=True, description='{"loss": 0.1, "acc": 0.9}')


class LogMetricsInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    rows = graphene.List(graphene.NonNull(MetricRowInput), required=True)
    command_id = command_id_field()
    occurred_at = graphene.DateTime(description="when it was logged on the client (offline runs), with a zone")


def _changes_run(kind: type[BaseModel]) -> Callable[..., Awaitable[dict]]:
    """The resolver of a mutation on one run: the command, then the run as it is now."""

    async def resolve(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        return await _run_after(info, parse_command(kind, dict(input)))

    return resolve


async def _resolve_log_metrics(root: Any, info: graphene.ResolveInfo, input: dict) -> int:
    accepted = await info.context.app.execute(parse_command(LogMetrics, input), info.context.caller)
    return accepted.subject_id


class RunMutations(graphene.ObjectType):
    start_run = graphene.Field(Run, required=True, input=StartRunInput(required=True), resolver=_changes_run(StartRun))
    finish_run = graphene.Field(
        Run, required=True, input=FinishRunInput(required=True), resolver=_changes_run(FinishRun)
    )
    log_metrics = graphene.Int(
        required=True,
        input=LogMetricsInput(required=True),
        description="Append metric rows to a run's history; returns how many rows were logged.",
        resolver=_resolve_log_metrics,
    )
    record_offline_sync = graphene.Field(
        Run,
        required=True,
        input=RecordSyncInput(required=True),
        description="Say that a run recorded offline was uploaded (`modelreg sync` sends it last).",
        resolver=_changes_run(RecordSync),
    )

    update_run_config = graphene.Field(
        Run,
        required=True,
        input=RunChangesInput(required=True),
        description="Set config keys of a run after it started (W&B's run.config.update): an event.",
        resolver=_changes_run(UpdateRunConfig),
    )
    update_run_summary = graphene.Field(
        Run,
        required=True,
        input=RunChangesInput(required=True),
        description="Set summary keys of a run.",
        resolver=_changes_run(UpdateRunSummary),
    )
    describe_run = graphene.Field(
        Run,
        required=True,
        input=DescribeRunInput(required=True),
        description="Rename, retag, annotate a run.",
        resolver=_changes_run(DescribeRun),
    )
    resume_run = graphene.Field(
        Run,
        required=True,
        input=ResumeRunInput(required=True),
        description="Reopen a run that ended to log to it again (W&B's init(resume=...)); a running one stays as is.",
        resolver=_changes_run(ResumeRun),
    )
    run_heartbeat = graphene.Boolean(
        required=True,
        input=RunHeartbeatInput(required=True),
        description="The run's process is alive (the training client sends one at start, then every 2 minutes it "
        "logs nothing): a running run that beats, silent for 15 minutes, is marked CRASHED; one marked so that "
        "beats again is RUNNING again.",
        resolver=_resolve_run_heartbeat,
    )
    raise_alert = graphene.Field(
        Run,
        required=True,
        input=RaiseAlertInput(required=True),
        description="W&B's run.alert: recorded in the audit history and sent to live-event subscribers.",
        resolver=_changes_run(RaiseAlert),
    )
