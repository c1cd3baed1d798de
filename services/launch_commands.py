"""Commands of Launch (queues, jobs, agents) and of automations."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from modelreg.events.automations import LaunchAction, TriggerSpec, WebhookAction
from modelreg.events.launch import JobSource, ResourceKind, Trigger
from modelreg.events.names import EntityName, ProjectName, RunId
from modelreg.services.commands import Command

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


class JobCommand(Command):
    """Reports about one attempt of a job, by the agent that claimed it."""

    needs = "member"

    job_id: UUID
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


class RequeueJob(Command):
    needs = "admin"

    job_id: UUID
    attempt: int = Field(ge=1)
    reason: str = Field(max_length=2000)


class CancelJob(Command):
    job_id: UUID
    reason: str | None = Field(default=None, max_length=2000)


class Heartbeat(Command):
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


class SetAutomationEnabled(Command):
    automation_id: UUID
    enabled: bool


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
