"""Events of training and evaluation runs. Stream: `run:<entity>/<project>/<run_id>`."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from modelreg.errors import listed, quoted
from modelreg.events.envelope import Event
from modelreg.events.names import EntityName, ProjectName, RunId


def run_stream(entity: str, project: str, run_id: str) -> str:
    return f"run:{entity}/{project}/{run_id}"


# Field types shared with the commands that ask for these events (services/commands/commands.py): one
# definition of what a valid value is, so that a command accepts exactly what its event can record.
RunName = Annotated[str, StringConstraints(max_length=200)]
JobType = Annotated[str, StringConstraints(max_length=100)]
RunEnd = Literal["finished", "failed", "crashed"]
RecordedCommands = Annotated[int, Field(ge=0)]
HostName = Annotated[str, StringConstraints(max_length=200)]
RunTag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
RunTags = Annotated[tuple[RunTag, ...], Field(max_length=100)]
RunNotes = Annotated[str, StringConstraints(max_length=100_000)]
RunGroup = Annotated[str, StringConstraints(max_length=200)]
# Config or summary keys set after init, with their new values, and keys removed (`del run.summary["k"]`); at
# least one of either (KeyChanges).
RunChanges = Annotated[dict[str, Any], Field(default_factory=dict)]
RemovedKeys = Annotated[
    tuple[Annotated[str, StringConstraints(min_length=1, max_length=1_000)], ...], Field(max_length=10_000)
]


class KeyChanges(BaseModel):
    """Config or summary keys set, and keys removed: what a change to a run's config or summary carries, its command
    and its event alike."""

    changes: RunChanges
    removed: RemovedKeys = ()

    @model_validator(mode="after")
    def _some_change(self) -> KeyChanges:
        if not self.changes and not self.removed:
            raise ValueError("give a key to set (changes) or to remove (removed)")
        if both := sorted(self.changes.keys() & set(self.removed)):
            raise ValueError(f"{listed(both)}: a key is set or removed, not both")
        return self


AlertTitle = Annotated[str, StringConstraints(min_length=1, max_length=500)]
AlertText = Annotated[str, StringConstraints(max_length=10_000)]
AlertLevel = Literal["INFO", "WARN", "ERROR"]


class RunStarted(Event):
    """v2: notes, tags and group (W&B's `init(notes=, tags=, group=)`); a v1 event reads as v2 without them."""

    type = "runs.run_started"
    version = 2

    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: RunName | None = None
    job_type: JobType | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    # Captured by the client at init: git, python, os, hardware, command line, packages.
    environment: dict[str, Any] = Field(default_factory=dict)
    notes: RunNotes | None = None
    tags: RunTags = ()
    group: RunGroup | None = None


class RunFinished(Event):
    """v2: the summary is merged into what the run set while running. A v1 finish replaced it (read back with
    `summary_replaces`, so that a rebuild gives old runs the summary they had)."""

    type = "runs.run_finished"
    version = 2

    entity: EntityName
    project: ProjectName
    run_id: RunId
    state: RunEnd
    exit_code: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    summary_replaces: bool = False


class MetricRow(BaseModel):
    """The values logged at one step: `run.log({"loss": 0.1, "acc": 0.9}, step=3)`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: int = Field(ge=0)
    values: dict[str, float] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _finite_named_numbers(cls, values: dict[str, float]) -> dict[str, float]:
        for key, value in values.items():
            if not key or len(key) > 200:
                raise ValueError(f"metric name {quoted(key)} must have 1 to 200 characters")
            if not math.isfinite(value):
                raise ValueError(f"metric {quoted(key)} is {value}: only finite numbers can be logged")
        return values


MetricRows = Annotated[tuple[MetricRow, ...], Field(min_length=1, max_length=10_000)]
MAX_STEP = 2**31 - 1  # steps are stored as 32-bit integers (and GraphQL's Int is one)
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class MetricSeries(BaseModel):
    """One metric's points in a batch, as columns (what curves are read as). `steps` None: dense, that is
    first_step, first_step + 1, ... (the common case, and half the bytes on the log)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    key: MetricName
    first_step: int = Field(ge=0, le=MAX_STEP)
    steps: tuple[Annotated[int, Field(ge=0, le=MAX_STEP)], ...] | None = None
    values: tuple[float, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _increasing_steps(self) -> MetricSeries:
        if self.steps is None:
            if self.first_step + len(self.values) - 1 > MAX_STEP:
                raise ValueError(f"metric {quoted(self.key)}: steps go past {MAX_STEP}")
            return self
        steps = self.steps
        if len(steps) != len(self.values):
            raise ValueError(f"metric {quoted(self.key)}: {len(steps)} steps for {len(self.values)} values")
        if steps[0] != self.first_step:
            raise ValueError(f"metric {quoted(self.key)}: first_step {self.first_step} is not the first of its steps")
        if any(a >= b for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"metric {quoted(self.key)}: steps must increase strictly within a batch")
        return self

    @property
    def last_step(self) -> int:
        return self.steps[-1] if self.steps is not None else self.first_step + len(self.values) - 1

    def step_list(self) -> list[int]:
        return list(self.steps) if self.steps is not None else list(range(self.first_step, self.last_step + 1))


def series_of(key: str, points: dict[int, float]) -> MetricSeries:
    """A series from {step: value}, sorted by step; dense when the steps leave no gap."""
    steps = sorted(points)
    dense = steps[-1] - steps[0] + 1 == len(steps)
    return MetricSeries(
        key=key, first_step=steps[0], steps=None if dense else tuple(steps), values=tuple(points[s] for s in steps)
    )


def series_from_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (`{"step": 3, "values": {"loss": 0.1}}`, v1 of the event and the logMetrics mutation) as series
    dicts; a value logged again at the same step replaces the earlier one, as it always did."""
    by_key: dict[str, dict[int, float]] = {}
    for row in rows:
        for key, value in row["values"].items():
            by_key.setdefault(key, {})[row["step"]] = value
    return [series_of(key, points).model_dump() for key, points in by_key.items()]


class MetricsLogged(Event):
    """A batch of metric points, one series per metric (the client's background sender batches `run.log`
    calls). v1 carried rows (step -> {key: value}); it is upcast to series on read (events/catalog.py)."""

    type = "runs.metrics_logged"
    version = 2

    entity: EntityName
    project: ProjectName
    run_id: RunId
    series: tuple[MetricSeries, ...] = Field(min_length=1)

    @field_validator("series")
    @classmethod
    def _one_series_per_key(cls, series: tuple[MetricSeries, ...]) -> tuple[MetricSeries, ...]:
        if len({s.key for s in series}) != len(series):
            raise ValueError("each metric may appear once in a batch (merge its points into one series)")
        return series

    @property
    def points(self) -> int:
        return sum(len(s.values) for s in self.series)

    def audit_dump(self) -> dict:
        """Each metric's steps and count, not its values: the points are on the log and in the run's history; kept
        in the audit log too, a training run's batches made it as large as the log (50 KB a record), and a page of a
        run's audit entries 4 MB."""
        series = [
            {
                "key": s.key,
                "first_step": s.first_step,
                "last_step": s.steps[-1] if s.steps else s.first_step + len(s.values) - 1,
                "points": len(s.values),
            }
            for s in self.series
        ]
        return {"entity": self.entity, "project": self.project, "run_id": self.run_id, "series": series}


class RunSynced(Event):
    """A run recorded offline was uploaded: its commands are on the log with the times they happened
    (and their client command ids as causation ids); this event's own time is when the upload ended,
    `commands` how many recorded commands the run has."""

    type = "runs.offline_run_synced"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    commands: RecordedCommands
    first_occurred_at: AwareDatetime | None = None
    last_occurred_at: AwareDatetime | None = None
    recorded_on: HostName | None = Field(default=None, description="the recording machine's host name")


class RunConfigUpdated(Event, KeyChanges):
    """`run.config.update(...)` (or an item set) after `init`: the keys given, with their new values. v2: and the keys
    removed (`del run.config["k"]`); v1 removed none."""

    type = "runs.config_updated"
    version = 2

    entity: EntityName
    project: ProjectName
    run_id: RunId


class RunSummaryUpdated(Event, KeyChanges):
    """`run.summary[...] = ...` or `run.summary.update(...)`: the keys given, with their new values. v2: and the keys
    removed (`del run.summary["k"]` then `run.update()` through the Api); v1 removed none."""

    type = "runs.summary_updated"
    version = 2

    entity: EntityName
    project: ProjectName
    run_id: RunId


class RunDescribed(Event):
    """The run's display name, notes, tags or group changed after `init` (`run.name = ...`, `run.tags = ...`).
    Only the fields given change; tags, when given, replace the run's tags."""

    type = "runs.run_described"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: RunName | None = None
    notes: RunNotes | None = None
    tags: RunTags | None = None
    group: RunGroup | None = None


class RunAlerted(Event):
    """`run.alert(title, text, level)`: recorded in the audit history and sent as a live event (no e-mail)."""

    type = "runs.alert_raised"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
    title: AlertTitle
    text: AlertText = ""
    level: AlertLevel = "INFO"


class RunHeartbeat(Event):
    """The run's process is alive, though it has logged nothing for a while (the client sends one at start and
    then while idle). A running run silent for long, that beats, is marked crashed (RunFinished, "crashed")."""

    type = "runs.run_heartbeat"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId


class RunResumed(Event):
    """`init(id=..., resume=...)` of a finished (or failed, crashed) run: it is running again, its history goes on."""

    type = "runs.run_resumed"
    version = 1

    entity: EntityName
    project: ProjectName
    run_id: RunId
