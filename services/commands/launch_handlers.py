"""Handlers of Launch and automation commands (see services/commands/handlers.py for how handlers work)."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter, ValidationError
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, InvalidInput, NotFound, PermissionDenied, quoted, shortened, validation_problems
from modelreg.events.automations import (
    TEMPLATE_VARIABLES,
    AutomationChanged,
    AutomationCreated,
    AutomationDeleted,
    AutomationDisabled,
    AutomationEnabled,
    AutomationFired,
    FiringRetried,
    LaunchAction,
    TriggerSpec,
    WebhookAction,
    WebhookAttempted,
    WebhookSecretRotated,
    automation_stream,
    has_back_reference,
    watched_scope,
)
from modelreg.events.launch import (
    AgentHeartbeat,
    JobCancelled,
    JobClaimed,
    JobEnqueued,
    JobFinished,
    JobOutputCaptured,
    JobRequeued,
    JobSource,
    JobStarted,
    QueueCreated,
    QueueDeleted,
    QueueEntitiesSet,
    Trigger,
    agent_stream,
    job_stream,
    queue_stream,
)
from modelreg.events.names import EntityName, ProjectName
from modelreg.projections.readable import scope_of
from modelreg.services.agent.image_references import IMAGE_REFERENCE
from modelreg.services.automations.templates import action_templates, template_variables
from modelreg.services.automations.webhook_targets import refuse_private_target
from modelreg.services.commands.access import (
    Caller,
    automation_scopes,
    entity_scopes,
    job_key_role,
    job_key_scopes,
    queue_scope,
    require_own_agent,
)
from modelreg.services.commands.api_keys import key_sha256, new_api_key
from modelreg.services.commands.command_identity import already_accepted
from modelreg.services.commands.commands import Command
from modelreg.services.commands.decisions import CommandContext, Decision, Handler
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
    JobCommand,
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


async def create_queue(cmd: CreateQueue, ctx: CommandContext) -> Decision:
    if await ctx.reads.launch.queue(cmd.queue) is not None:
        raise Conflict(f"queue {quoted(cmd.queue)} already exists")
    payload = QueueCreated(**{**cmd.model_dump(), "entities": tuple(dict.fromkeys(cmd.entities))})
    return Decision([ctx.event(payload, queue_stream(cmd.queue))], cmd.queue)


async def delete_queue(cmd: DeleteQueue, ctx: CommandContext) -> Decision:
    if await ctx.reads.launch.queue(cmd.queue) is None:
        raise NotFound(f"queue {quoted(cmd.queue)} does not exist")
    if waiting := await ctx.reads.launch.jobs_to_run(cmd.queue):
        raise Conflict(
            f"queue {quoted(cmd.queue)} has {waiting} job(s) waiting or running: cancel them first "
            f"(`modelreg job list --queue {cmd.queue}`, then `modelreg job cancel ID`), or let them end"
        )
    if launching := await ctx.reads.launch.automations_launching_into(cmd.queue):
        named = ", ".join(f"{a['automation_id']} ({a['name']})" for a in launching[:5])
        raise Conflict(
            f"queue {quoted(cmd.queue)} is where {len(launching)} automation(s) launch jobs: {named}; change them to "
            "another queue or delete them first (`modelreg automation change` or `delete`)"
        )
    return Decision([ctx.event(QueueDeleted(queue=cmd.queue), queue_stream(cmd.queue))], cmd.queue)


async def set_queue_entities(cmd: SetQueueEntities, ctx: CommandContext) -> Decision:
    queue = await ctx.reads.launch.queue(cmd.queue)
    if queue is None:
        raise NotFound(
            f"queue {quoted(cmd.queue)} does not exist: create it (`modelreg queue create {cmd.queue}`, or "
            "createLaunchQueue)"
        )
    entities = tuple(dict.fromkeys(cmd.entities))
    if tuple(queue["entities"]) == entities:
        return Decision([], cmd.queue)
    payload = QueueEntitiesSet(queue=cmd.queue, entities=entities)
    return Decision([ctx.event(payload, queue_stream(cmd.queue))], cmd.queue)


def _takes_jobs_of(queue: dict[str, Any], entity: str) -> None:
    if queue["entities"] and entity not in queue["entities"]:
        # Its list is not named: it may hold a private team's name.
        raise PermissionDenied(
            f"queue {queue['name']!r} does not take jobs of {quoted(entity)} (its jobs run side by side on its agents' "
            f"machines, for the teams an installation admin named): use another queue, or ask an installation admin "
            f"to add {quoted(entity)} to it (setLaunchQueueEntities)"
        )


def _runs_jobs_of_kind(queue: dict[str, Any], kind: str) -> None:
    # Its agents would take the job and fail it at once ("image jobs need a docker or kubernetes queue"): an
    # automation's every firing, for as long as nobody reads the job's error.
    if kind == "image" and queue["resource"] == "local-process":
        raise InvalidInput(
            f"queue {quoted(queue['name'])} runs its jobs as local processes, which cannot start an image: "
            "use a docker or kubernetes queue, or a git source (git url + entry point)"
        )


async def _source_of_run(cmd: EnqueueJob, ctx: CommandContext) -> tuple[JobSource, dict[str, Any]]:
    """The code a run ran (its git commit and uncommitted diff, its command line) and its config."""
    run = await ctx.reads.registry.run(cmd.entity, cmd.project, cmd.from_run or "")
    if run is None:
        raise NotFound(f"run {cmd.entity}/{cmd.project}/{cmd.from_run} does not exist")
    env = run["environment"] or {}
    git = env.get("git") or {}
    if not git.get("remote") or not git.get("commit"):
        raise InvalidInput(
            f"run {cmd.from_run} recorded no git remote and commit, so its code cannot be checked out: "
            "enqueue with a source (git url + entry point, or an image) instead"
        )
    if git.get("diff_not_text"):
        raise InvalidInput(
            f"run {cmd.from_run} had uncommitted changes that are not UTF-8 text, which a run cannot record, so its "
            "code cannot be reproduced: commit them, run again, and clone that run"
        )
    if git.get("diff_omitted_bytes"):
        raise InvalidInput(
            f"run {cmd.from_run} had {git['diff_omitted_bytes']:,} bytes of uncommitted changes, too many to record, "
            "so its code cannot be reproduced: commit them, run again, and clone that run"
        )
    command = env.get("command") or []
    if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
        raise InvalidInput(
            f"run {cmd.from_run} recorded its command line as {type(command).__name__}, not a list of arguments: "
            "enqueue with a source and entry point instead"
        )
    try:
        # What a run recorded is what its client sent, not checked as a job's source is at the door.
        source = JobSource(
            kind="git",
            git_remote=git["remote"],
            git_commit=git["commit"],
            diff_patch=git.get("diff") or None,
            entry_point=_entry_point(command, git.get("root")),
            cloned_from_run=f"{cmd.entity}/{cmd.project}/{cmd.from_run}",
        )
    except ValidationError as refused:
        raise InvalidInput(
            f"run {cmd.from_run} recorded what a job cannot run ({validation_problems(refused)}): "
            "enqueue with a source instead"
        ) from None
    return source, dict(run["config"] or {})


def _entry_point(command: list[str], root: str | None) -> tuple[str, ...]:
    """The run's command line, with its script relative to the repository so it runs in a fresh checkout."""
    if len(command) < 2:
        raise InvalidInput("the run recorded no command line to re-run: enqueue with a source and entry point instead")
    script = PurePosixPath(command[1])
    if script.is_absolute() and root and script.is_relative_to(root):
        script = script.relative_to(root)
    return ("python", str(script), *command[2:])


async def enqueue_job(cmd: EnqueueJob, ctx: CommandContext) -> Decision:
    _not_a_job_attempt(ctx.caller, "enqueueing a job", _A_JOB_OUTLIVES_IT)
    if (earlier := await already_accepted(cmd, ctx, subject="job_id")) and earlier.subject:
        return Decision([], UUID(earlier.subject))  # sent again: the job it enqueued, not a second one
    queue = await ctx.reads.launch.queue(cmd.queue)
    if queue is None:
        raise NotFound(
            f"queue {quoted(cmd.queue)} does not exist: an admin creates it (`modelreg queue create {cmd.queue}`, or "
            "createLaunchQueue)"
        )
    _takes_jobs_of(queue, cmd.entity)
    if cmd.triggered_by is not None and ctx.actor.kind != "automation":
        raise InvalidInput("only an automation enqueues a job as triggered_by")
    if cmd.job_id is not None and await ctx.reads.launch.job(cmd.job_id) is not None:
        return Decision([], cmd.job_id)  # a retry of an enqueue that went through
    if (cmd.from_run is None) == (cmd.source is None):
        raise InvalidInput(
            "give exactly one of fromRun (clone a finished run) or source (git url or image + entry point)"
        )
    if cmd.from_run is not None:
        source, base = await _source_of_run(cmd, ctx)
    else:
        assert cmd.source is not None
        source, base = cmd.source, dict(cmd.config)
    if source.image is not None and not IMAGE_REFERENCE.fullmatch(source.image):
        # The agent would pass it to `docker run`, where a leading "-" makes it an option (--privileged).
        raise InvalidInput(
            f"source.image {quoted(source.image)} is not an image reference (registry/name:tag or @sha256:)"
        )
    _runs_jobs_of_kind(queue, source.kind)
    job_id = cmd.job_id or uuid7()
    payload = JobEnqueued(
        job_id=job_id,
        queue=cmd.queue,
        entity=cmd.entity,
        project=cmd.project,
        priority=cmd.priority,
        source=source,
        config=config_with(base, cmd.overrides),
        overrides=cmd.overrides,
        triggered_by=cmd.triggered_by,
        time_limit_s=cmd.time_limit_s,
    )
    return Decision([ctx.event(payload, job_stream(job_id))], job_id)


def config_with(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The config with the overrides set. A dotted key (`optimizer.lr`) sets the nested value where the config holds a
    dict at each step of the path and no key of that name itself: set as a key of its own, it changed nothing the
    script read (W&B's configs nest). A key naming a dict (`optimizer`) replaces it whole."""
    changed = dict(config)
    for key, value in overrides.items():
        *path, last = key.split(".")
        if key in changed or not path or not _dicts_along(changed, path):
            changed[key] = value
            continue
        inner = changed
        for part in path:  # copied on the way down: the run's own config stays as it was
            inner[part] = dict(inner[part])
            inner = inner[part]
        inner[last] = value
    return changed


def _dicts_along(config: dict[str, Any], path: list[str]) -> bool:
    inner: Any = config
    for part in path:
        inner = inner.get(part) if isinstance(inner, dict) else None
        if not isinstance(inner, dict):
            return False
    return True


def _scope(job: dict[str, Any]) -> str:
    """What a job's reports are read under: its entity (the job and its runs are the entity's)."""
    return f"entity:{job['entity']}"


async def _job(job_id: UUID, ctx: CommandContext) -> dict[str, Any]:
    job = await ctx.reads.launch.job(job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return job


@dataclass(frozen=True)
class Claimed:
    """What a claim gives the agent: the attempt it runs, and the key the attempt's code runs with (shown once)."""

    attempt: int
    api_key: str


async def claim_job(cmd: ClaimJob, ctx: CommandContext) -> Decision:
    """Two agents may both append a claim; the job's stream orders them and the first one wins (the
    resolver tells each agent which it was)."""
    require_own_agent(ctx.caller, cmd.agent_id)
    job = await _job(cmd.job_id, ctx)
    # Each on its own (the command's check passes when either scope is within a key's limits): a key limited to a
    # queue would otherwise claim any team's job there, and its attempt's key write in that team.
    ctx.caller.require("member", entity_scopes(job["entity"]), f"claiming a job of entity {job['entity']!r}")
    _its_key_may_write_there(ctx.caller, job["entity"])
    if any(scope.startswith("queue:") for scope in ctx.caller.limits):
        ctx.caller.require("member", (queue_scope(job["queue"]),), f"claiming a job on queue {job['queue']!r}")
    if job["state"] != "queued":
        raise Conflict(f"job {cmd.job_id} is {job['state']}, not queued: another agent took it")
    queue = await ctx.reads.launch.queue(job["queue"])
    if queue is not None:  # enqueued before its entity was left out of the queue's
        _takes_jobs_of(queue, job["entity"])
    key_id, key = new_api_key()
    payload = JobClaimed(
        job_id=cmd.job_id,
        agent_id=cmd.agent_id,
        attempt=job["attempt"] + 1,
        scope=_scope(job),
        key_id=key_id,
        key_sha256=key_sha256(key),
        key_role=job_key_role(ctx.caller),
        key_scopes=job_key_scopes(ctx.caller, job["entity"]),
        claimed_with=ctx.caller.key_id,
    )
    return Decision([ctx.event(payload, job_stream(cmd.job_id))], Claimed(payload.attempt, key))


def _its_key_may_write_there(agent: Caller, entity: str) -> None:
    """In a private entity only a grant gives a role. An installation admin's key needs none, but the attempt's key,
    member at most, would: its job could not write its runs there."""
    (scope,) = entity_scopes(entity)
    if scope in agent.private and scope not in agent.grants:
        raise PermissionDenied(
            f"{scope} is private and {agent.actor} holds no role there, so the key of a job it ran could write "
            f"nothing there: grant {agent.actor} member on {scope} (mutation grantRole), or run the job with "
            "another agent"
        )


async def _current_attempt(cmd: JobCommand, attempt: int, ctx: CommandContext) -> dict[str, Any]:
    """The attempt a report is about must be the job's current one, claimed by this agent of the caller's key."""
    require_own_agent(ctx.caller, cmd.agent_id)
    job = await _job(cmd.job_id, ctx)
    if job["attempt"] != attempt or job["agent_id"] != cmd.agent_id or job["state"] not in ("claimed", "running"):
        raise Conflict(
            f"attempt {attempt} of job {cmd.job_id} by {cmd.agent_id} is void (the job is {job['state']}, "
            f"attempt {job['attempt']}, agent {job['agent_id']}): stop working on it"
        )
    return job


async def report_job_started(cmd: ReportJobStarted, ctx: CommandContext) -> Decision:
    job = await _current_attempt(cmd, cmd.attempt, ctx)
    payload = JobStarted(
        job_id=cmd.job_id, attempt=cmd.attempt, agent_id=cmd.agent_id, pid=cmd.pid, detail=cmd.detail, scope=_scope(job)
    )
    return Decision([ctx.event(payload, job_stream(cmd.job_id))], cmd.job_id)


async def capture_job_output(cmd: CaptureJobOutput, ctx: CommandContext) -> Decision:
    require_own_agent(ctx.caller, cmd.agent_id)
    if await already_accepted(cmd, ctx):  # sent again after a lost answer: kept once
        return Decision([], cmd.job_id)
    job = await _current_attempt(cmd, cmd.attempt, ctx)
    payload = JobOutputCaptured(
        job_id=cmd.job_id, attempt=cmd.attempt, stream=cmd.stream, text=cmd.text, scope=_scope(job)
    )
    return Decision([ctx.event(payload, job_stream(cmd.job_id))], cmd.job_id)


async def report_job_finished(cmd: ReportJobFinished, ctx: CommandContext) -> Decision:
    require_own_agent(ctx.caller, cmd.agent_id)
    if await already_accepted(cmd, ctx):  # sent again after a lost answer: not "attempt ... is void"
        return Decision([], cmd.job_id)
    job = await _current_attempt(cmd, cmd.attempt, ctx)
    payload = JobFinished(**cmd.model_dump(exclude={"agent_id", "command_id"}), scope=_scope(job))
    return Decision([ctx.event(payload, job_stream(cmd.job_id))], cmd.job_id)


async def requeue_job(cmd: RequeueJob, ctx: CommandContext) -> Decision:
    job = await _job(cmd.job_id, ctx)
    if job["attempt"] != cmd.attempt or job["state"] not in ("claimed", "running"):
        return Decision([], cmd.job_id)  # it finished or was requeued meanwhile
    return Decision([ctx.event(JobRequeued(**cmd.model_dump(), scope=_scope(job)), job_stream(cmd.job_id))], cmd.job_id)


async def retry_job(cmd: RetryJob, ctx: CommandContext) -> Decision:
    _not_a_job_attempt(ctx.caller, "running a job again", _A_JOB_OUTLIVES_IT)
    if (earlier := await already_accepted(cmd, ctx, subject="job_id")) and earlier.subject:
        return Decision([], UUID(earlier.subject))  # sent again: the job it made, not a second retry
    job = await _job(cmd.job_id, ctx)
    if job["state"] in ("queued", "claimed", "running"):
        raise Conflict(f"job {cmd.job_id} is still {job['state']}: cancel it first to run it again")
    queue = await ctx.reads.launch.queue(job["queue"])
    if queue is None:
        raise NotFound(f"queue {job['queue']!r} of job {cmd.job_id} does not exist any more")
    _takes_jobs_of(queue, job["entity"])
    retry_id = uuid7()
    payload = JobEnqueued(
        job_id=retry_id,
        queue=job["queue"],
        entity=job["entity"],
        project=job["project"],
        priority=job["priority"],
        source=JobSource.model_validate(job["source"]),
        config=job["config"],
        overrides=job["overrides"],
        time_limit_s=job.get("time_limit_s"),
        retry_of=cmd.job_id,
        # Still the automation's job: its loop guard knows an alias this one moves as its own doing (a retry without
        # it fired the automation again), and the job says where it came from.
        triggered_by=Trigger.model_validate(job["triggered_by"]) if job.get("triggered_by") else None,
    )
    return Decision([ctx.event(payload, job_stream(retry_id))], retry_id)


async def return_job(cmd: ReturnJob, ctx: CommandContext) -> Decision:
    require_own_agent(ctx.caller, cmd.agent_id)
    job = await _job(cmd.job_id, ctx)
    if job["attempt"] != cmd.attempt or job["agent_id"] != cmd.agent_id or job["state"] not in ("claimed", "running"):
        return Decision([], cmd.job_id)  # it finished, was cancelled or requeued meanwhile: nothing to give back
    payload = JobRequeued(
        job_id=cmd.job_id, attempt=cmd.attempt, reason=cmd.reason, scope=_scope(job), by_its_agent=True
    )
    return Decision([ctx.event(payload, job_stream(cmd.job_id))], cmd.job_id)


async def cancel_job(cmd: CancelJob, ctx: CommandContext) -> Decision:
    if cmd.job_id != ctx.caller.job_id:  # its own job it may stop: that ends its attempt, and its key with it
        _not_a_job_attempt(
            ctx.caller,
            f"cancelling job {cmd.job_id}",
            "a job's code stops its own job only (another is not its job): cancel that one with your own key "
            "(`modelreg job cancel ID`)",
        )
    if await already_accepted(cmd, ctx):  # sent again: the job it cancelled, not "already cancelled"
        return Decision([], cmd.job_id)
    job = await _job(cmd.job_id, ctx)
    if job["state"] not in ("queued", "claimed", "running"):
        raise Conflict(f"job {cmd.job_id} is already {job['state']}")
    return Decision([ctx.event(JobCancelled(**cmd.facts(), scope=_scope(job)), job_stream(cmd.job_id))], cmd.job_id)


async def heartbeat(cmd: Heartbeat, ctx: CommandContext) -> Decision:
    require_own_agent(ctx.caller, cmd.agent_id)
    if not ctx.caller.writes_somewhere():
        ctx.caller.require("member", (), "an agent's heartbeat (an agent runs jobs, which a viewer may not)")
    return Decision([ctx.event(AgentHeartbeat(**cmd.model_dump()), agent_stream(cmd.agent_id))], cmd.agent_id)


def _not_a_job_attempt(caller: Caller, doing: str, because: str) -> None:
    """A job's code acts through its job, in its entity and the registry, and not after its attempt ends. Its key is
    its agent principal's: a job it enqueued ran with a fresh key of its own and enqueued the next, without end, and
    an automation fires with its agent principal's rights for as long as it lives. (An agent's own commands are
    refused to it by require_own_agent.)"""
    if caller.job_id is not None:
        raise PermissionDenied(
            f"this key was issued for an attempt of job {caller.job_id} and may not be used for {doing}: {because}"
        )


_A_JOB_OUTLIVES_IT = (
    "that job would run after this attempt ends, with a key of its own that could enqueue the next, without end; "
    "enqueue it with your own key (`modelreg launch`), or have an automation enqueue it when this job's run "
    "finishes or its artifact is logged (createAutomation)"
)
_AN_AUTOMATION_OUTLIVES_IT = "an automation outlives the attempt; create or switch it on with your own key"
_AN_AUTOMATION_IS_NOT_ITS_JOB = (
    "a job's code acts through its own job, not on its team's automations; do it with your own key "
    "(`modelreg automation`)"
)


async def create_automation(cmd: CreateAutomation, ctx: CommandContext) -> Decision:
    _not_a_job_attempt(ctx.caller, "creating an automation", _AN_AUTOMATION_OUTLIVES_IT)
    await _spec_checked(cmd.trigger, cmd.action, ctx)
    automation_id = uuid7()
    payload = AutomationCreated(automation_id=automation_id, **cmd.model_dump())
    warnings = await _watched_names_missing(cmd.trigger, ctx)
    return Decision([ctx.event(payload, automation_stream(automation_id))], automation_id, warnings)


async def change_automation(cmd: ChangeAutomation, ctx: CommandContext) -> Decision:
    _not_a_job_attempt(ctx.caller, "changing an automation", _AN_AUTOMATION_OUTLIVES_IT)
    automation = await _its_creators_live_automation(
        cmd.automation_id, ctx, "changes", "it acts with their rights", once_deleted="create another"
    )
    if cmd.action.kind != automation["action"]["kind"]:
        raise InvalidInput(
            f"an automation's action stays a {automation['action']['kind']} (a webhook's secret goes with it): "
            "create another automation for a new kind"
        )
    new_scopes = automation_scopes(cmd.trigger.model_dump(), cmd.action.model_dump())
    ctx.caller.require("member", new_scopes, "changing an automation to watch or act there")
    await _spec_checked(cmd.trigger, cmd.action, ctx)
    payload = AutomationChanged(
        **cmd.model_dump(exclude={"command_id", "occurred_at"}),
        scope=watched_scope(cmd.trigger.model_dump(), cmd.action.model_dump()),
    )
    warnings = await _watched_names_missing(cmd.trigger, ctx)
    return Decision([ctx.event(payload, automation_stream(cmd.automation_id))], cmd.automation_id, warnings)


async def _spec_checked(trigger: TriggerSpec, action: LaunchAction | WebhookAction, ctx: CommandContext) -> None:
    """What an automation's trigger and action must be, created or changed."""
    for field, pattern in (("alias_pattern", trigger.alias_pattern), ("tag_pattern", trigger.tag_pattern)):
        if pattern is not None and has_back_reference(pattern):
            raise InvalidInput(
                f"trigger.{field} {quoted(pattern)} refers back to a group (\\1 to \\9): matching that can take time "
                "exponential in an alias's length, so triggers do not take it; write the alternatives out instead"
            )
        # Matched whole, as the trigger projection matches it (projections/triggers.py, TRIGGERS_V3).
        if pattern is not None and (problem := await ctx.reads.launch.pattern_refused(f"^(?:{pattern})$")):
            raise InvalidInput(
                f"trigger.{field} {quoted(pattern)} is not a regular expression PostgreSQL can run ({problem}): "
                "write it in POSIX style (no (?i) or named groups; [Pp]rod for either case)"
            )
    _fires_on_an_alias_that_can_be_added(trigger)
    _names_only_what_the_trigger_provides(trigger, action)
    _may_watch(trigger, ctx)
    if action.kind == "launch":
        _names_the_event_does_not_fill_are_valid(action.entity, action.project)
        _may_launch_in(action.entity, ctx)
        queue = await ctx.reads.launch.queue(action.queue)
        if queue is None:
            raise NotFound(f"queue {quoted(action.queue)} does not exist: an admin creates it first")
        if "${" not in action.entity:  # else each firing's enqueue is checked on the entity it fills in
            _takes_jobs_of(queue, action.entity)
        _runs_jobs_of_kind(queue, action.source.kind)
    if action.kind == "webhook":
        if action.allow_private_network:
            ctx.caller.require("admin", (), "a webhook to a private or loopback address")
        else:
            await refuse_private_target(action.url)


async def _watched_names_missing(trigger: TriggerSpec, ctx: CommandContext) -> tuple[str, ...]:
    """Warnings, not refusals: an automation may be set up before what it watches (a model registered later), but a
    typo (`nature-clasification`) was accepted silently and never fired."""
    warnings = []
    if (
        trigger.registered_model is not None
        and await ctx.reads.registry.registered_model(trigger.registered_model) is None
    ):
        warnings.append(
            f"no registered model {shortened(trigger.registered_model)} exists yet: this automation fires once one "
            "is created with that name (check its spelling)"
        )
    if trigger.entity and trigger.project and trigger.collection:
        where = f"{trigger.entity}/{trigger.project}/{trigger.collection}"
        if (
            await ctx.reads.registry.artifact_version_by_ref(
                trigger.entity, trigger.project, trigger.collection, "latest"
            )
            is None
        ):
            warnings.append(
                f"artifact collection {shortened(where)} has no version yet: this automation fires once one is "
                "logged under that name (check its spelling)"
            )
    return tuple(warnings)


# What an alias is made of (NAME_PATTERN): the letters an alias one edit away from `latest` may differ by.
_ALIAS_LETTERS = string.ascii_letters + string.digits + "._-"


def _one_edit_away(word: str) -> set[str]:
    """Every name one letter deleted, changed or inserted away from `word`."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deleted = {head + tail[1:] for head, tail in splits if tail}
    changed = {head + letter + tail[1:] for head, tail in splits if tail for letter in _ALIAS_LETTERS}
    inserted = {head + letter + tail for head, tail in splits for letter in _ALIAS_LETTERS}
    return (deleted | changed | inserted) - {word}


def _fires_on_an_alias_that_can_be_added(trigger: TriggerSpec) -> None:
    """`latest` is computed (the newest version linked), never added, so no registry.alias_added carries it: "when
    alias latest is added", as W&B users write it, was accepted and never fired. The rule, predictable without
    reading the regex: a pattern that matches `latest` but no alias one letter away from it (it spells `latest`
    out: `latest`, `^latest$`, `latest|production`) is refused; `.*` or `lat.*` match others and are taken."""
    if trigger.event != "alias_added" or trigger.alias_pattern is None:
        return
    whole = re.compile(f"(?:{trigger.alias_pattern})")
    if not whole.fullmatch("latest"):
        return
    if any(whole.fullmatch(name) for name in _one_edit_away("latest")):
        return
    raise InvalidInput(
        f"trigger.alias_pattern {quoted(trigger.alias_pattern)} matches 'latest', which is never added as an alias: "
        "the registry computes it (the newest version linked), so this automation would never fire for it. To act "
        "on each new latest version, use a version_linked trigger on the registered model (each version linked "
        "is the new latest); to act on aliases people add, name those (e.g. 'candidate|production')"
    )


def _may_watch(trigger: TriggerSpec, ctx: CommandContext) -> None:
    """An automation's creator reads what it watches, within its key's limits: its firings carry the events' facts
    (a job's config, a webhook's payload) wherever it launches, and a key limited to its own team, leaked, watched a
    private model through one."""
    watched = watched_scope(trigger.model_dump(exclude_none=True), {})  # the action's entity is not watched
    caller = ctx.caller
    if caller.limits and (watched is None or not caller.within_limits(watched)):
        raise PermissionDenied(
            f"the key in use is limited to {', '.join(caller.limits)}; the trigger watches "
            f"{watched or 'every team and model'}: name a registered model or entity within the key's limits, or use "
            "a key without limits"
        )
    if watched is not None and not caller.readable().scope(watched):
        raise PermissionDenied(
            f"{watched} is private and you may not read it: an automation watches only what its creator reads"
        )


async def delete_automation(cmd: DeleteAutomation, ctx: CommandContext) -> Decision:
    _not_a_job_attempt(ctx.caller, "deleting an automation", _AN_AUTOMATION_IS_NOT_ITS_JOB)
    automation = await ctx.reads.launch.automation(cmd.automation_id)
    if automation is None:
        raise NotFound(f"automation {cmd.automation_id} does not exist")
    if automation.get("deleted_at") is not None:
        return Decision([], cmd.automation_id)  # a retry of a deletion that went through
    if str(ctx.caller.actor) != automation["created_by"]:
        # Its creator may have left (each key revoked): an admin of where it acts (the entity it launches jobs in,
        # else the entity or model it watches) cleans up after them. One watching every team is the installation's.
        where = automation_scopes(automation["trigger"], automation["action"])
        ctx.caller.require("admin", where, f"deleting {automation['created_by']}'s automation")
    scope = watched_scope(automation["trigger"], automation["action"])
    payload = AutomationDeleted(automation_id=cmd.automation_id, scope=scope)
    return Decision([ctx.event(payload, automation_stream(cmd.automation_id))], cmd.automation_id)


async def _its_creators_live_automation(
    automation_id: UUID, ctx: CommandContext, doing: str, because: str, *, once_deleted: str
) -> dict[str, Any]:
    """The automation, when it is not deleted and the caller created it: what only its creator does to it."""
    automation = await ctx.reads.launch.automation(automation_id)
    if automation is None:
        raise NotFound(f"automation {automation_id} does not exist")
    if automation.get("deleted_at") is not None:
        raise Conflict(f"automation {automation_id} was deleted: {once_deleted}")
    if str(ctx.caller.actor) != automation["created_by"]:
        raise PermissionDenied(
            f"only {automation['created_by']}, its creator, {doing} automation {automation_id}: {because} (an admin "
            "may switch it off or delete it)"
        )
    return automation


async def rotate_webhook_secret(cmd: RotateWebhookSecret, ctx: CommandContext) -> Decision:
    _not_a_job_attempt(ctx.caller, "rotating a webhook's secret", _AN_AUTOMATION_OUTLIVES_IT)
    automation = await _its_creators_live_automation(
        cmd.automation_id,
        ctx,
        "rotates the secret of",
        "the new secret is shown to whoever rotates it",
        once_deleted="it signs nothing any more",
    )
    if automation["action"]["kind"] != "webhook":
        raise InvalidInput(f"automation {cmd.automation_id} launches jobs: it has no webhook secret to rotate")
    keep = cmd.keep_previous_s
    payload = WebhookSecretRotated(
        automation_id=cmd.automation_id,
        secret_generation=automation["secret_generation"] + 1,
        previous_signs_until=datetime.now(UTC) + timedelta(seconds=keep) if keep else None,
        scope=watched_scope(automation["trigger"], automation["action"]),
    )
    return Decision([ctx.event(payload, automation_stream(cmd.automation_id))], payload.secret_generation)


async def retry_firing(cmd: RetryFiring, ctx: CommandContext) -> Decision:
    _not_a_job_attempt(ctx.caller, "retrying an automation's firing", _AN_AUTOMATION_OUTLIVES_IT)
    automation = await ctx.reads.launch.automation(cmd.automation_id)
    firing = await ctx.reads.launch.firing(cmd.automation_id, cmd.event_id)
    if automation is None:
        raise NotFound(f"automation {cmd.automation_id} does not exist")
    # A firing tells as much as its event: one about a scope the caller may not read is not there for them.
    event_scope = scope_of(firing["variables"]) if firing is not None else None
    if firing is None or not ctx.caller.readable().scope(event_scope):
        raise NotFound(f"automation {cmd.automation_id} did not fire for event {cmd.event_id}")
    if str(ctx.caller.actor) != automation["created_by"]:
        ctx.caller.require("admin", (), f"retrying a firing of {automation['created_by']}'s automation")
    if automation.get("deleted_at") is not None:
        raise Conflict(f"automation {cmd.automation_id} was deleted: its firings are kept, not carried out")
    if not automation["enabled"]:
        raise Conflict(f"automation {cmd.automation_id} is switched off: switch it on first, then retry the firing")
    if firing["status"] == "pending":
        return Decision([], cmd.event_id)  # still to be carried out (or a retry that went through)
    if firing["status"] not in ("failed", "skipped"):
        ran = f": retry job {firing['job_id']} instead (`modelreg job retry`)" if firing["job_id"] else ""
        raise Conflict(f"automation {cmd.automation_id}'s firing for event {cmd.event_id} was {firing['status']}{ran}")
    scope = event_scope or watched_scope(automation["trigger"], automation["action"])
    payload = FiringRetried(automation_id=cmd.automation_id, event_id=cmd.event_id, scope=scope)
    return Decision([ctx.event(payload, automation_stream(cmd.automation_id))], cmd.event_id)


async def set_automation_enabled(cmd: SetAutomationEnabled, ctx: CommandContext) -> Decision:
    _not_a_job_attempt(
        ctx.caller,
        f"switching {'on' if cmd.enabled else 'off'} an automation",
        _AN_AUTOMATION_OUTLIVES_IT if cmd.enabled else _AN_AUTOMATION_IS_NOT_ITS_JOB,
    )
    automation = await ctx.reads.launch.automation(cmd.automation_id)
    if automation is None:
        raise NotFound(f"automation {cmd.automation_id} does not exist")
    if automation.get("deleted_at") is not None:
        raise Conflict(f"automation {cmd.automation_id} was deleted: create another")
    if automation["enabled"] == cmd.enabled:
        return Decision([], cmd.automation_id)
    if cmd.enabled and str(ctx.caller.actor) != automation["created_by"]:
        # It acts with its creator's rights: switched on by another, it would do for them what its creator may.
        ctx.caller.require("admin", (), f"switching on {automation['created_by']}'s automation")
    if cmd.enabled and automation["action"].get("kind") == "launch":
        _may_launch_in(automation["action"]["entity"], ctx)
    scope = watched_scope(automation["trigger"], automation["action"])
    if not cmd.enabled and str(ctx.caller.actor) != automation["created_by"] and scope is None:
        # One watching every team is the installation's (an audit webhook, say): a member of some team may
        # switch off what watches that team, not what watches every one.
        ctx.caller.require("admin", (), f"switching off {automation['created_by']}'s automation of every team")
    payload = (AutomationEnabled if cmd.enabled else AutomationDisabled)(automation_id=cmd.automation_id, scope=scope)
    return Decision([ctx.event(payload, automation_stream(cmd.automation_id))], cmd.automation_id)


_ENTITY_NAME: TypeAdapter[str] = TypeAdapter(EntityName)
_PROJECT_NAME: TypeAdapter[str] = TypeAdapter(ProjectName)


def _names_only_what_the_trigger_provides(trigger: TriggerSpec, action: LaunchAction | WebhookAction) -> None:
    """A template naming a variable its trigger does not provide (a typo, `${alias}` on version_linked) was sent as
    written, and the job failed on `use_artifact("${artifcat_ref}")` at every firing."""
    provided = TEMPLATE_VARIABLES[trigger.event]
    for template in action_templates(action.model_dump()):
        for name in template_variables(template):
            if name not in provided:
                raise InvalidInput(
                    f"the action names ${{{shortened(name)}}}, which a {trigger.event} trigger does not provide: it "
                    f"provides {', '.join(sorted(provided))} (write $$ for a $ that names nothing)"
                )


def _names_the_event_does_not_fill_are_valid(entity: str, project: str) -> None:
    """Refused now rather than at every firing: a name without a template is what every job will carry."""
    for what, name, adapter in (("entity", entity, _ENTITY_NAME), ("project", project, _PROJECT_NAME)):
        if "${" in name:
            continue
        try:
            adapter.validate_python(name)
        except ValidationError as refused:
            raise InvalidInput(
                f"action.{what} {quoted(name)} is not a valid {what} name: {validation_problems(refused)}"
            ) from None


def _may_launch_in(entity: str, ctx: CommandContext) -> None:
    # The runner enqueues as the automation: nobody may automate what they could not do by hand.
    ctx.caller.require("member", entity_scopes(entity), f"an automation that launches jobs in {quoted(entity)}")


async def record_automation_fired(cmd: RecordAutomationFired, ctx: CommandContext) -> Decision:
    return Decision(
        [ctx.event(AutomationFired(**cmd.model_dump()), automation_stream(cmd.automation_id))], cmd.event_id
    )


async def record_webhook_attempt(cmd: RecordWebhookAttempt, ctx: CommandContext) -> Decision:
    return Decision(
        [ctx.event(WebhookAttempted(**cmd.model_dump()), automation_stream(cmd.automation_id))], cmd.event_id
    )


LAUNCH_HANDLERS: dict[type[Command], Handler] = {
    CreateQueue: create_queue,
    DeleteQueue: delete_queue,
    SetQueueEntities: set_queue_entities,
    EnqueueJob: enqueue_job,
    ClaimJob: claim_job,
    ReportJobStarted: report_job_started,
    CaptureJobOutput: capture_job_output,
    ReportJobFinished: report_job_finished,
    RequeueJob: requeue_job,
    RetryJob: retry_job,
    ReturnJob: return_job,
    CancelJob: cancel_job,
    Heartbeat: heartbeat,
    CreateAutomation: create_automation,
    SetAutomationEnabled: set_automation_enabled,
    ChangeAutomation: change_automation,
    DeleteAutomation: delete_automation,
    RotateWebhookSecret: rotate_webhook_secret,
    RetryFiring: retry_firing,
    RecordAutomationFired: record_automation_fired,
    RecordWebhookAttempt: record_webhook_attempt,
}
