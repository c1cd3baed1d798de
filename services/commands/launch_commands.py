"""Commands of Launch (queues, jobs, agents) and of automations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import Field

from modelreg.errors import NotFound
from modelreg.events.automations import LaunchAction, TriggerSpec, WebhookAction
from modelreg.events.launch import JobSource, ResourceKind, Trigger
from modelreg.events.names import EntityName, ProjectName, RunId
from modelreg.projections.launch_queries import LaunchQueries
from modelreg.services.commands.access import automation_scopes, entity_scopes, queue_scope
from modelreg.services.commands.commands import Command

if TYPE_CHECKING:
    from modelreg.projections.registry_queries import RegistryQueries

_QUEUE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_AGENT = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"


class CreateQueue(Command):
    needs = "admin"

    queue: str = Field(pattern=_QUEUE, max_length=100)
    resource: ResourceKind = "local-process"
    resource_config: dict[str, Any] = Field(default_factory=dict)


class EnqueueJob(Command):
    """From a finished run (its code and config, with `overrides`), or from a source given outright."""

    queue: str = Field(pattern=_QUEUE, max_length=100)
    entity: EntityName
    project: ProjectName
    from_run: RunId | None = None
    source: JobSource | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=-1000, le=1000)
    # Set by the automation runner: a retry after a crash names the same job, which is then not enqueued again.
    job_id: UUID | None = None
    triggered_by: Trigger | None = None

    def scopes(self) -> tuple[str, ...]:
        return (*entity_scopes(self.entity), queue_scope(self.queue))


class OnAJob(Command):
    """A command about one job: checked on the job's entity, which the read models know."""

    job_id: UUID

    async def scopes_in(self, reads: RegistryQueries) -> tuple[str, ...]:
        job = await LaunchQueries(reads.pool).job(self.job_id)
        if job is None:
            raise NotFound(f"job {self.job_id} does not exist")
        return (*entity_scopes(job["entity"]), queue_scope(job["queue"]))


class JobCommand(OnAJob):
    """Reports about one attempt of a job, by the agent that claimed it (an agent of the caller's key)."""

    needs = "member"

    agent_id: str = Field(pattern=_AGENT, max_length=200)


class ClaimJob(JobCommand):
    pass


class ReportJobStarted(JobCommand):
    attempt: int = Field(ge=1)
    pid: int | None = None
    detail: str | None = Field(default=None, max_length=10_000)


class CaptureJobOutput(JobCommand):
    attempt: int = Field(ge=1)
    stream: Literal["stdout", "stderr"]
    text: str = Field(min_length=1, max_length=1_000_000)


class ReportJobFinished(JobCommand):
    attempt: int = Field(ge=1)
    state: Literal["finished", "failed"]
    exit_code: int | None = None
    reason: str | None = Field(default=None, max_length=10_000)
    run_ids: tuple[RunId, ...] = ()


class RequeueJob(OnAJob):
    needs = "admin"

    attempt: int = Field(ge=1)
    reason: str = Field(max_length=2000)


class CancelJob(OnAJob):
    reason: str | None = Field(default=None, max_length=2000)


class Heartbeat(Command):
    """Speaks only for an agent of the caller's key and moves no job: any key that writes somewhere may send it
    (the handler checks both), so an agent of a member by grant keeps its jobs."""

    needs = "viewer"

    agent_id: str = Field(pattern=_AGENT, max_length=200)
    queues: tuple[str, ...] = Field(min_length=1)
    running_jobs: tuple[UUID, ...] = ()


class CreateAutomation(Command):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    trigger: TriggerSpec
    action: LaunchAction | WebhookAction = Field(discriminator="kind")
    cooldown_s: float = Field(default=0, ge=0, le=86_400 * 30)
    enabled: bool = True

    def scopes(self) -> tuple[str, ...]:
        return automation_scopes(self.trigger.model_dump(), self.action.model_dump())


class SetAutomationEnabled(Command):
    automation_id: UUID
    enabled: bool

    async def scopes_in(self, reads: RegistryQueries) -> tuple[str, ...]:
        automation = await LaunchQueries(reads.pool).automation(self.automation_id)
        if automation is None:
            raise NotFound(f"automation {self.automation_id} does not exist")
        return automation_scopes(automation["trigger"], automation["action"])


class RecordAutomationFired(Command):
    """By the automation runner, as the automation itself."""

    needs = "admin"

    automation_id: UUID
    event_id: UUID
    event_type: str
    outcome: Literal["enqueued", "delivered", "failed"]
    job_id: UUID | None = None
    detail: str | None = Field(default=None, max_length=2000)


class RecordWebhookAttempt(Command):
    needs = "admin"

    automation_id: UUID
    event_id: UUID
    attempt: int = Field(ge=1)
    url: str = Field(max_length=2000)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=2000)
    duration_ms: float
