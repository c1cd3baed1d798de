"""Events of Launch: queues, the jobs on them, and the agents that run them.

Streams: `launch_queue:<name>` (a queue's settings), `job:<id>` (everything that happens to one job, so
claims, reports and requeues are ordered: the first claim of an attempt wins, later ones are void),
`agent:<id>` (heartbeats).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from modelreg.events.envelope import Event
from modelreg.events.identity import KeyId, KeyLimits, PrivateScope, ReadScope, Role
from modelreg.events.names import EntityName, ProjectName, RunId

# Field types shared with the Launch commands (services/commands/launch_commands.py).
QueueName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]
ResourceKind = Literal["local-process", "docker", "kubernetes"]
# An agent is named after its key's principal: `service:gpu-pool:host-1` (services/commands/access.py).
AgentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$", max_length=200)]
Attempt = Annotated[int, Field(ge=1)]
Priority = Annotated[int, Field(ge=-1000, le=1000)]
# How long an attempt of a job may run, in seconds: at most 30 days (a week-long training, with room to spare).
TimeLimit = Annotated[int, Field(ge=1, le=30 * 24 * 3600)]
JobDetail = Annotated[str, StringConstraints(max_length=10_000)]
OutputStream = Literal["stdout", "stderr"]
OutputText = Annotated[str, StringConstraints(min_length=1, max_length=1_000_000)]
JobEnd = Literal["finished", "failed"]
Reason = Annotated[str, StringConstraints(max_length=2000)]
AgentQueues = Annotated[tuple[str, ...], Field(min_length=1)]  # the queues an agent takes jobs from


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


# A queue's jobs run side by side on its agents' machines, under their OS user: a queue serving several teams
# lets each team's job read the others'. An installation admin names the teams that share one.
QueueEntities = Annotated[
    tuple[EntityName, ...],
    Field(max_length=100, description="the entities whose jobs the queue takes; none: every entity's"),
]


class QueueTeams(BaseModel):
    """The entities a queue takes jobs of, named again as scopes (derived, never given): the record is read only by
    who reads every one of them (projections/readable.py, limited_to), so a private team's name reaches no
    outsider, even once made private later."""

    entities: QueueEntities = ()
    scopes: tuple[PrivateScope, ...] = Field(default=(), max_length=100)

    @model_validator(mode="before")
    @classmethod
    def _scopes_name_the_entities(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**data, "scopes": [f"entity:{entity}" for entity in data.get("entities") or ()]}
        return data


class QueueCreated(Event, QueueTeams):
    type = "launch.queue_created"
    version = 2

    queue: QueueName
    resource: ResourceKind
    # kubernetes: namespace, image, cpu, memory, gpu, service_account; docker: image, gpus, env.
    resource_config: dict[str, Any] = Field(default_factory=dict)


class QueueEntitiesSet(Event, QueueTeams):
    """An installation admin changed which entities' jobs the queue takes (jobs already waiting of an entity left
    out wait until it is named again, or are cancelled)."""

    type = "launch.queue_entities_set"
    version = 1

    queue: QueueName


class QueueDeleted(Event):
    """An installation admin deleted the queue, which held no job still to run: its name may be created again,
    and its jobs keep it."""

    type = "launch.queue_deleted"
    version = 1

    queue: QueueName


class JobEnqueued(Event):
    type = "launch.job_enqueued"
    version = 2

    job_id: UUID
    queue: QueueName
    entity: EntityName
    project: ProjectName
    priority: Priority = 0
    source: JobSource
    config: dict[str, Any] = Field(
        default_factory=dict, description="what modelreg.init() in the job sees as run.config"
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="the knobs changed against the source run's config"
    )
    triggered_by: Trigger | None = None
    time_limit_s: TimeLimit | None = Field(
        default=None,
        description="an attempt running longer is stopped (SIGTERM, then SIGKILL 10 s later) and the job failed",
    )
    retry_of: UUID | None = Field(default=None, description="the ended job this one runs again, as it was enqueued")


class JobClaimed(Event):
    """An agent took an attempt of the job, and the attempt got its own API key: the agent's principal, limited to
    the job's entity (and the registry, where the agent's key may write there), revoked when the attempt ends. The
    job's code runs with it, not with the agent's key, which would let a job's author act for the agent elsewhere.
    The key itself goes only to the agent, in the claim's answer; the log keeps its hash. Revoking the agent's key
    that claimed revokes it too: the attempt's key sits on the agent's host."""

    type = "launch.job_claimed"
    version = 4
    private_fields = frozenset({"key_sha256", "claimed_with"})  # key ids are for admins (the Access page)

    job_id: UUID
    agent_id: AgentId
    attempt: Attempt
    scope: ReadScope = None  # the job's entity: who reads it reads this
    # None: claimed before attempts had keys (v2), the job ran with its agent's key.
    key_id: KeyId | None = None
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    key_role: Role | None = None
    key_scopes: KeyLimits = ()
    # The agent's key that claimed (None: claimed before v4, or by the server acting on its own behalf).
    claimed_with: KeyId | None = None


class JobStarted(Event):
    type = "launch.job_started"
    version = 2

    job_id: UUID
    attempt: Attempt
    agent_id: AgentId
    pid: int | None = None
    detail: JobDetail | None = Field(default=None, description="e.g. the Kubernetes manifest it submitted")
    scope: ReadScope = None  # the job's entity: who reads it reads this


class JobOutputCaptured(Event):
    """A chunk of the job's stdout/stderr, batched by the agent."""

    type = "launch.job_output_captured"
    version = 2

    job_id: UUID
    attempt: Attempt
    stream: OutputStream
    text: OutputText
    scope: ReadScope = None  # the job's entity: who reads it reads this


class JobFinished(Event):
    type = "launch.job_finished"
    version = 2

    job_id: UUID
    attempt: Attempt
    state: JobEnd
    exit_code: int | None = None
    reason: JobDetail | None = None
    run_ids: tuple[RunId, ...] = ()
    scope: ReadScope = None  # the job's entity: who reads it reads this


class JobRequeued(Event):
    """The attempt is void (its agent vanished, or stopped and gave the job back); the job waits for another
    claim."""

    type = "launch.job_requeued"
    version = 3

    job_id: UUID
    attempt: Attempt
    reason: Reason
    scope: ReadScope = None  # the job's entity: who reads it reads this
    # Given back by its agent, which was stopped (a redeploy): not counted against the job as a vanished agent is.
    by_its_agent: bool = False


class JobCancelled(Event):
    type = "launch.job_cancelled"
    version = 2

    job_id: UUID
    reason: Reason | None = None
    scope: ReadScope = None  # the job's entity: who reads it reads this


class AgentHeartbeat(Event):
    type = "launch.agent_heartbeat"
    version = 1

    agent_id: AgentId
    queues: AgentQueues
    running_jobs: tuple[UUID, ...] = ()


# What ends a job's attempt, and so revokes the attempt's key.
ATTEMPT_ENDS = (JobFinished, JobRequeued, JobCancelled)


def ends_attempt(event: Event, job_id: UUID, attempt: int | None) -> bool:
    """Whether the event ends that attempt of the job: a cancel ends the job whatever its attempt; a finish or a
    requeue ends the attempt it names, so the late report of an earlier attempt leaves the current one alone."""
    if not isinstance(event, ATTEMPT_ENDS) or event.job_id != job_id:
        return False
    return isinstance(event, JobCancelled) or event.attempt == attempt
