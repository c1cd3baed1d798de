"""Commands of Launch (queues, jobs, agents) and of automations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid5

from pydantic import Field

from modelreg.errors import NotFound
from modelreg.events.automations import (
    AutomationDescription,
    AutomationName,
    Cooldown,
    FiringOutcome,
    LaunchAction,
    Note,
    ReadScope,
    TriggerSpec,
    WebhookAction,
    WebhookUrl,
)
from modelreg.events.launch import (
    AgentId,
    AgentQueues,
    Attempt,
    JobDetail,
    JobEnd,
    JobSource,
    OutputStream,
    OutputText,
    Priority,
    QueueEntities,
    QueueName,
    Reason,
    ResourceKind,
    TimeLimit,
    Trigger,
)
from modelreg.events.names import EntityName, ProjectName, RunId
from modelreg.projections.readable import EVERYTHING, Readable
from modelreg.services.commands.access import automation_scopes, entity_scopes, queue_scope
from modelreg.services.commands.commands import Command, Identified

if TYPE_CHECKING:
    from modelreg.services.commands.read_models import ReadModels


class CreateQueue(Command):
    needs = "admin"

    queue: QueueName
    resource: ResourceKind = "local-process"
    resource_config: dict[str, Any] = Field(default_factory=dict)
    entities: QueueEntities = ()


class SetQueueEntities(Command):
    needs = "admin"

    queue: QueueName
    entities: QueueEntities


def queue_turn(queue: str) -> UUID:
    """The turn of the commands about whether a queue exists and what waits in it: a job enqueued beside the queue's
    deletion would wait in a queue no agent polls."""
    return uuid5(_QUEUE_TURNS, queue)


_QUEUE_TURNS = UUID("3d0c5a7e-2b1f-4e6a-8c9d-7f1e2a3b4c5d")


class DeleteQueue(Command):
    """An installation admin's, once no job waits or runs in it and no automation launches into it."""

    needs = "admin"

    queue: QueueName

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        return (queue_turn(self.queue),)


class EnqueueJob(Identified):
    """From a finished run (its code and config, with `overrides`), or from a source given outright."""

    queue: QueueName
    entity: EntityName
    project: ProjectName
    from_run: RunId | None = None
    source: JobSource | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = 0
    time_limit_s: TimeLimit | None = None
    # Set by the automation runner: a retry after a crash names the same job, which is then not enqueued again.
    job_id: UUID | None = None
    triggered_by: Trigger | None = None

    def scopes(self) -> tuple[str, ...]:
        return (*entity_scopes(self.entity), queue_scope(self.queue))

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        return (queue_turn(self.queue),)


class OnAJob(Command):
    """A command about one job: checked on the job's entity, which the read models know."""

    job_id: UUID

    async def scopes_in(self, reads: ReadModels, readable: Readable = EVERYTHING) -> tuple[str, ...]:
        job = await reads.launch.job(self.job_id)
        if job is None or not readable.entity(job["entity"]):
            raise NotFound(f"job {self.job_id} does not exist")
        return (*entity_scopes(job["entity"]), queue_scope(job["queue"]))


class JobCommand(OnAJob):
    """Reports about one attempt of a job, by the agent that claimed it (an agent of the caller's key)."""

    needs = "member"

    agent_id: AgentId


class ClaimJob(JobCommand):
    pass


class ReportJobStarted(JobCommand):
    attempt: Attempt
    pid: int | None = None
    detail: JobDetail | None = None


class CaptureJobOutput(JobCommand, Identified):
    """Sent again under its `command_id` (an answer lost in an API's restart), a piece of output is kept once."""

    attempt: Attempt
    stream: OutputStream
    text: OutputText


class ReportJobFinished(JobCommand, Identified):
    """Sent again under its `command_id`, it is answered as the first copy was: not refused as a report about an
    attempt that has ended (by this very report)."""

    attempt: Attempt
    state: JobEnd
    exit_code: int | None = None
    reason: JobDetail | None = None
    run_ids: tuple[RunId, ...] = ()


class ReturnJob(JobCommand):
    """An agent that is stopping gives back an attempt it stopped: the job waits for another agent at once."""

    attempt: Attempt
    reason: Reason


class RequeueJob(OnAJob):
    needs = "admin"

    attempt: Attempt
    reason: Reason


class RetryJob(OnAJob, Identified):
    """Run an ended job again (failed, cancelled, or finished), as it was enqueued: a new job."""

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        job = await reads.launch.job(self.job_id)
        return (queue_turn(job["queue"]),) if job is not None else ()


class CancelJob(OnAJob, Identified):
    reason: Reason | None = None


class Heartbeat(Command):
    """Speaks only for an agent of the caller's key and moves no job: any key that writes somewhere may send it
    (the handler checks both), so an agent of a member by grant keeps its jobs."""

    needs = "viewer"

    agent_id: AgentId
    queues: AgentQueues
    running_jobs: tuple[UUID, ...] = ()


class CreateAutomation(Command):
    name: AutomationName
    description: AutomationDescription | None = None
    trigger: TriggerSpec
    action: LaunchAction | WebhookAction = Field(discriminator="kind")
    cooldown_s: Cooldown = 0
    enabled: bool = True

    def scopes(self) -> tuple[str, ...]:
        return automation_scopes(self.trigger.model_dump(), self.action.model_dump())

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        # Beside the deletion of its queue, it would launch into a queue that is gone.
        return (queue_turn(self.action.queue),) if self.action.kind == "launch" else ()


class OnAnAutomation(Command):
    """A command about one automation: checked on what it watches and where it launches, which the read models
    know."""

    automation_id: UUID

    async def scopes_in(self, reads: ReadModels, readable: Readable = EVERYTHING) -> tuple[str, ...]:
        automation = await reads.launch.automation(self.automation_id)
        if automation is None or not readable.automation(automation["trigger"], automation["action"]):
            raise NotFound(f"automation {self.automation_id} does not exist")
        return automation_scopes(automation["trigger"], automation["action"])


class SetAutomationEnabled(OnAnAutomation):
    enabled: bool


class ChangeAutomation(OnAnAutomation):
    """Its creator's only (it acts with their rights): the whole new spec, as createAutomation takes it."""

    name: AutomationName
    description: AutomationDescription | None = None
    trigger: TriggerSpec
    action: LaunchAction | WebhookAction = Field(discriminator="kind")
    cooldown_s: Cooldown = 0

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        return (queue_turn(self.action.queue),) if self.action.kind == "launch" else ()


class RotateWebhookSecret(OnAnAutomation):
    """Its creator's (the new secret is shown to whoever rotates it): the webhook's secret replaced by the next, the
    previous one signing beside it for `keep_previous_s` while the receiver switches over."""

    keep_previous_s: int = Field(default=86_400, ge=0, le=7 * 86_400)


class DeleteAutomation(OnAnAutomation):
    """Its creator's, an installation admin's, or an admin's of where it acts (its creator may have left): it acts
    with its creator's rights, and its firings stay for the audit."""


class RetryFiring(OnAnAutomation):
    """Its creator's, or an admin's: a failed or skipped firing carried out again, as the automation is now."""

    event_id: UUID


class RecordAutomationFired(Command):
    """By the automation runner, as the automation itself."""

    needs = "admin"

    automation_id: UUID
    event_id: UUID
    event_type: str
    outcome: FiringOutcome
    job_id: UUID | None = None
    detail: Note | None = None
    scope: ReadScope = None


class RecordWebhookAttempt(Command):
    needs = "admin"

    automation_id: UUID
    event_id: UUID
    attempt: int = Field(ge=1)
    url: WebhookUrl
    status_code: int | None = None
    error: Note | None = None
    duration_ms: float
    scope: ReadScope = None
