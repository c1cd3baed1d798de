"""Events of Launch: queues, the jobs on them, and the agents that run them.

Streams: `launch_queue:<name>` (a queue's settings), `job:<id>` (everything that happens to one job, so
claims, reports and requeues are ordered: the first claim of an attempt wins, later ones are void),
`agent:<id>` (heartbeats).
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelreg.events.envelope import Event
from modelreg.events.names import EntityName, ProjectName, RunId

QueueName = str
ResourceKind = Literal["local-process", "docker", "kubernetes"]
_QUEUE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def queue_stream(queue: str) -> str:
    return f"launch_queue:{queue}"


def job_stream(job_id: UUID) -> str:
    return f"job:{job_id}"


def agent_stream(agent_id: str) -> str:
    return f"agent:{agent_id}"


class JobSource(BaseModel):
    """What to run: code at a git commit (plus the uncommitted diff of the run it was cloned from),
    or a Docker image; and the command that starts it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["git", "image"]
    git_remote: str | None = Field(default=None, max_length=2000)
    git_commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{7,40}$")
    diff_patch: str | None = Field(default=None, max_length=10_000_000)
    image: str | None = Field(default=None, max_length=500)
    entry_point: tuple[str, ...] = Field(min_length=1, max_length=100)
    cloned_from_run: str | None = Field(default=None, max_length=300, description="entity/project/run_id")

    @model_validator(mode="after")
    def _complete(self) -> JobSource:
        if self.kind == "git" and not self.git_remote:
            raise ValueError("a git job needs git_remote (and usually git_commit)")
        if self.kind == "image" and not self.image:
            raise ValueError("an image job needs image")
        return self


class Trigger(BaseModel):
    """Why an automation enqueued a job: which automation, because of which event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    automation_id: UUID
    event_id: UUID
    event_type: str


class QueueCreated(Event):
    type = "launch.queue_created"
    version = 1

    queue: str = Field(pattern=_QUEUE, max_length=100)
    resource: ResourceKind
    # kubernetes: namespace, image, cpu, memory, gpu, service_account; docker: image, gpus, env.
    resource_config: dict[str, Any] = Field(default_factory=dict)


class JobEnqueued(Event):
    type = "launch.job_enqueued"
    version = 1

    job_id: UUID
    queue: str = Field(pattern=_QUEUE, max_length=100)
    entity: EntityName
    project: ProjectName
    priority: int = Field(default=0, ge=-1000, le=1000)
    source: JobSource
    config: dict[str, Any] = Field(
        default_factory=dict, description="what modelreg.init() in the job sees as run.config"
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="the knobs changed against the source run's config"
    )
    triggered_by: Trigger | None = None


class JobClaimed(Event):
    type = "launch.job_claimed"
    version = 1

    job_id: UUID
    agent_id: str = Field(max_length=200)
    attempt: int = Field(ge=1)


class JobStarted(Event):
    type = "launch.job_started"
    version = 1

    job_id: UUID
    attempt: int = Field(ge=1)
    agent_id: str = Field(max_length=200)
    pid: int | None = None
    detail: str | None = Field(default=None, max_length=10_000, description="e.g. the Kubernetes manifest it submitted")


class JobOutputCaptured(Event):
    """A chunk of the job's stdout/stderr, batched by the agent."""

    type = "launch.job_output_captured"
    version = 1

    job_id: UUID
    attempt: int = Field(ge=1)
    stream: Literal["stdout", "stderr"]
    text: str = Field(max_length=1_000_000)


class JobFinished(Event):
    type = "launch.job_finished"
    version = 1

    job_id: UUID
    attempt: int = Field(ge=1)
    state: Literal["finished", "failed"]
    exit_code: int | None = None
    reason: str | None = Field(default=None, max_length=10_000)
    run_ids: tuple[RunId, ...] = ()


class JobRequeued(Event):
    """The attempt is void (its agent vanished); the job waits for another claim."""

    type = "launch.job_requeued"
    version = 1

    job_id: UUID
    attempt: int = Field(ge=1)
    reason: str = Field(max_length=2000)


class JobCancelled(Event):
    type = "launch.job_cancelled"
    version = 1

    job_id: UUID
    reason: str | None = Field(default=None, max_length=2000)


class AgentHeartbeat(Event):
    type = "launch.agent_heartbeat"
    version = 1

    agent_id: str = Field(max_length=200)
    queues: tuple[str, ...]
    running_jobs: tuple[UUID, ...] = ()
