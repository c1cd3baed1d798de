"""Commands: what a caller asks for, in the imperative. Validated by pydantic before any handler sees them.

Each says who may ask: the role it `needs` on the scopes its fields name. The application checks that
before any handler runs; handlers add the checks that need the read models (protected aliases).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from uuid import UUID, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from modelreg.events.artifacts import Manifest
from modelreg.events.identity import KeyId, KeyLabel, KeyLimits, PrincipalId, PrincipalKind, PrivateScope, Role, Scope
from modelreg.events.names import (
    Aliases,
    AliasName,
    ArtifactName,
    ArtifactType,
    Description,
    EntityName,
    ProjectName,
    RegisteredModelName,
    RunId,
    TagName,
)
from modelreg.events.runs import (
    AlertLevel,
    AlertText,
    AlertTitle,
    HostName,
    JobType,
    KeyChanges,
    MetricRows,
    MetricSeries,
    RecordedCommands,
    RunEnd,
    RunGroup,
    RunName,
    RunNotes,
    RunTags,
)
from modelreg.events.storable_text import UnstorableText, refuse_unstorable
from modelreg.projections.readable import EVERYTHING, Readable
from modelreg.services.commands.access import entity_scopes, model_scopes

if TYPE_CHECKING:
    from modelreg.services.commands.read_models import ReadModels


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    needs: ClassVar[Role] = "member"

    # Every field of every command, strings nested in JSON values and keys included: text PostgreSQL cannot
    # store never reaches the log (a projection would park on it). Before the type checks, so that this
    # message, not pydantic's "unable to parse raw data", names a lone surrogate.
    @field_validator("*", mode="before")
    @classmethod
    def _storable_text(cls, value: Any, info: ValidationInfo) -> Any:
        try:
            refuse_unstorable(value, info.field_name or "input")
        except UnstorableText as exc:
            problem = exc.problem(info.field_name)
            raise PydanticCustomError("unstorable_text", "{problem}", {"problem": problem}) from None
        return value

    def scopes(self) -> tuple[str, ...]:
        """Where the command acts, most specific scope first; () is the whole installation."""
        if isinstance(model := getattr(self, "registered_model", None), str):
            return model_scopes(model)
        if isinstance(entity := getattr(self, "entity", None), str):
            return entity_scopes(entity)
        return ()

    async def scopes_in(self, reads: ReadModels, readable: Readable = EVERYTHING) -> tuple[str, ...]:
        """`scopes()`, for the application's check; a command that names only an id (a job, an automation)
        looks up where that thing lives in the read models, and to a caller who may not read it (`readable`)
        the thing does not exist, as for its reads: refused for its scope, the answer would name it."""
        return self.scopes()

    def describe(self) -> str:
        return _described(type(self).__name__)

    def idempotency_key(self) -> UUID | None:
        """What makes copies of this command one command (services/commands/in_flight.py); None: nothing."""
        return None

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        """What commands that must not be decided side by side share, whoever sends them: each is checked
        against read models that show the one before it (services/commands/in_flight.py); (): nothing."""
        return ()

    def names_taken(self) -> tuple[UUID, ...]:
        """Turns beside `turns_of` for names a command takes for everyone (a client-chosen id), not per caller as
        `idempotency_key` is."""
        return ()


@cache
def _described(class_name: str) -> str:
    """`LinkVersion` -> `link version`, for refusals; made once per command type, not at every command."""
    return re.sub(r"(?<!^)([A-Z])", r" \1", class_name).lower()


# A client's clock may run a little ahead of ours; more than this is a wrong clock, not skew.
CLOCK_SKEW = timedelta(minutes=5)
# A claimed time before this is a clock never set (and year 1 at +14:00 is out of PostgreSQL's range in UTC).
EARLIEST_CLAIM = datetime(1970, 1, 1, tzinfo=UTC)


class Identified(Command):
    """A command a client may send again under the id it chose (a retry after a timeout or a cut connection).

    `command_id` is the client's idempotency key: the command's events carry it as their causation id and, in
    their ids, the command's identity (services/commands/command_identity.py): the same command sent again is
    answered as the first was and changes nothing; another command sent under the same id is refused.
    """

    command_id: UUID | None = None

    def idempotency_key(self) -> UUID | None:
        return self.command_id

    def facts(self) -> dict[str, Any]:
        """The fields that become the event's payload (the id and a claimed time go to its envelope)."""
        return self.model_dump(exclude={"command_id", "occurred_at"})

    def identity_input(self) -> dict[str, Any]:
        """What makes this command the one it is, whatever id and claimed time it is sent with: its fields (as
        validated, models nested) but those."""
        return {name: value for name, value in self.__dict__.items() if name not in ("command_id", "occurred_at")}


class Recordable(Identified):
    """A command a client may have recorded earlier (offline) and sends now.

    Its `command_id` (see Identified) makes a sync run twice, or resumed after a cut, a no-op. `occurred_at` is
    when it happened on the client: a claim, kept beside the server's time of receipt as the events'
    `recorded_offline_at`, and only for a run's own commands, bounded by the run's start
    (services/commands/offline_claims.py). Audit, filters and history go by the server's time.
    """

    occurred_at: AwareDatetime | None = None

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, occurred_at: datetime | None) -> datetime | None:
        if occurred_at is not None and occurred_at > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError(
                f"{occurred_at.isoformat()} is in the future: check the clock of the machine that recorded it"
            )
        if occurred_at is not None and occurred_at < EARLIEST_CLAIM:
            raise ValueError(
                f"{occurred_at.isoformat()} is before 1970: check the clock of the machine that recorded it"
            )
        return occurred_at

    def claiming_run(self) -> tuple[str, str, str] | None:
        """The run whose own history this command is (entity, project, run id): the only commands whose
        time a client may claim. A link, or a version logged outside a run, is not part of one."""
        run_id = getattr(self, "run_id", None)
        if run_id is None:
            return None
        entity, project = (getattr(self, name) for name in ("entity", "project"))  # every run's command has them
        return entity, project, run_id


class StartRun(Recordable):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: RunName | None = None
    job_type: JobType | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    notes: RunNotes | None = None
    tags: RunTags = ()
    group: RunGroup | None = None

    @field_validator("environment")
    @classmethod
    def _a_launch_job_id_of_a_job_id_size(cls, environment: dict[str, Any]) -> dict[str, Any]:
        """The job a Launch agent started the run for is indexed (a run's job, a job's runs): an index row
        holds at most ~2.7 KB, and a job id is a UUID."""
        launch = environment.get("launch")
        job_id = launch.get("job_id") if isinstance(launch, dict) else None
        if job_id is not None and not (isinstance(job_id, str) and len(job_id) <= 64):
            raise ValueError("environment.launch.job_id must be a job id (text of at most 64 characters)")
        return environment


class FinishRun(Recordable):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    state: RunEnd = "finished"
    exit_code: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict)


class LogMetrics(Recordable):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    rows: MetricRows


# Bounds of one batch of points (invariant 9): its event stays ~2 MB on the log at most.
MAX_BATCH_POINTS = 100_000
MAX_BATCH_METRICS = 10_000


class LogMetricBatch(Recordable):
    """Points of a run's metrics, one series per metric: what the client's background sender ships."""

    entity: EntityName
    project: ProjectName
    run_id: RunId
    series: tuple[MetricSeries, ...] = Field(min_length=1, max_length=MAX_BATCH_METRICS)

    @field_validator("series")
    @classmethod
    def _bounded(cls, series: tuple[MetricSeries, ...]) -> tuple[MetricSeries, ...]:
        if len({s.key for s in series}) != len(series):
            raise ValueError("each metric may appear once in a batch: merge its points into one series")
        points = sum(len(s.values) for s in series)
        if points > MAX_BATCH_POINTS:
            raise ValueError(
                f"{points:,} points in one batch, over the limit of {MAX_BATCH_POINTS:,}: send less at once"
            )
        return series


class LogArtifactVersion(Recordable):
    entity: EntityName
    project: ProjectName
    name: ArtifactName
    artifact_type: ArtifactType
    manifest: Manifest = ()
    description: Description | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    aliases: Aliases = ()
    run_id: RunId | None = None
    # Chosen by a client that logged the version offline, so that later commands can name it. A UUIDv7,
    # like the ids the server mints.
    artifact_version_id: UUID | None = None
    # The newest version when the turns were taken (see turns_of); unset when no turn was asked for.
    _newest_in_turn: UUID | None | Literal["unasked"] = PrivateAttr(default="unasked")

    @field_validator("artifact_version_id")
    @classmethod
    def _a_uuid7(cls, value: UUID | None) -> UUID | None:
        if value is not None and value.version != 7:
            raise ValueError("a client-chosen artifact version id must be a UUIDv7 (uuid_utils.uuid7())")
        return value

    def idempotency_key(self) -> UUID | None:
        # The version's id names one version whatever command ids its copies came with.
        return self.artifact_version_id or self.command_id

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        # Content equal to the newest version's is that version: two workers of one distributed job logging the
        # same files at once each found the newest without the other's, and made two versions.
        collection = uuid5(_COLLECTION_TURNS, f"{self.entity}/{self.project}/{self.name}")
        if not self.aliases:
            return (collection,)
        # Aliases asked for may go to the newest version, if its files are these: in its turn, beside whose
        # deletion an alias moved onto it was lost with it.
        newest = await reads.registry.artifact_version_by_ref(self.entity, self.project, self.name, "latest")
        self._newest_in_turn = None if newest is None else newest["id"]
        return (collection,) if newest is None else (collection, version_turn(newest["id"]))

    def in_the_turn_taken(self, newest_id: UUID) -> bool:
        """Whether the newest version now is the one whose turn this command took (when it asked for aliases)."""
        return not self.aliases or self._newest_in_turn in ("unasked", newest_id)

    def names_taken(self) -> tuple[UUID, ...]:
        # Two callers sending one id into two collections at once each found it free: both were told yes, and
        # the projection kept one version (the other only in the audit log, its answer naming the first's).
        if self.artifact_version_id is None:
            return ()
        return (uuid5(self.artifact_version_id, "a client-chosen artifact version id"),)


class UseArtifactVersion(Recordable):
    artifact_version_id: UUID
    entity: EntityName
    project: ProjectName
    run_id: RunId


_COLLECTION_TURNS = UUID("0b5d2c1e-7f0a-4d8e-9a3b-5c6e7f8a9b0c")


def version_turn(artifact_version_id: UUID) -> UUID:
    """The turn of the commands about whether a version exists and what links it and what its aliases are: their
    events go to two streams (its collection's, a registered model's), which no partition orders. A link decided
    beside a deletion linked a deleted version; an alias beside an unlink stayed on an unlinked version."""
    return uuid5(artifact_version_id, "links-and-existence")


_ALIAS_TURNS = UUID("5f0c9a44-2b7e-4c1d-8e6a-3d9b1f2a7c58")


def alias_turn(registered_model: str, alias: str) -> UUID:
    """The turn of the commands about one alias of a registered model: moving, removing, protecting it. Whether a
    member may move it depends on its protection, which a move decided beside `protectAlias` did not see yet: a
    member moved `production` after an admin's protection was acknowledged."""
    return uuid5(_ALIAS_TURNS, f"{registered_model}\x00{alias}")


class LinkVersion(Recordable):
    registered_model: RegisteredModelName
    artifact_version_id: UUID
    aliases: Aliases = ()

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        aliases = (alias_turn(self.registered_model, alias) for alias in dict.fromkeys(self.aliases))
        return (version_turn(self.artifact_version_id), *aliases)


class AddAlias(Identified):
    registered_model: RegisteredModelName
    artifact_version_id: UUID
    alias: AliasName

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        return version_turn(self.artifact_version_id), alias_turn(self.registered_model, self.alias)


class RemoveAlias(Identified):
    registered_model: RegisteredModelName
    alias: AliasName

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        return (alias_turn(self.registered_model, self.alias),)


class UnlinkVersion(Identified):
    """Takes away the aliases the version holds: in their turns, those it held when the turns were taken, which the
    handler checks are still all it holds (`in_the_turns_taken`)."""

    registered_model: RegisteredModelName
    artifact_version_id: UUID
    # The aliases whose turns this command took; None when no turn was asked for.
    _aliases_in_turn: frozenset[str] | None = PrivateAttr(default=None)

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        held = await reads.registry.aliases_of(self.registered_model, self.artifact_version_id)
        self._aliases_in_turn = frozenset(held)
        return version_turn(self.artifact_version_id), *(alias_turn(self.registered_model, a) for a in sorted(held))

    def in_the_turns_taken(self, held: Iterable[str]) -> bool:
        """Whether the aliases the version holds now are among those whose turns this command took."""
        return self._aliases_in_turn is None or self._aliases_in_turn.issuperset(held)


class ModelCardText(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Description | None = None
    inputs: Description | None = None
    outputs: Description | None = None


_CARD_TURNS = UUID("0b8e3f52-6d1a-4c7e-9a25-e4f1c3b7d906")


class UpdateModelCard(Command):
    registered_model: RegisteredModelName
    description: Description
    inputs: Description | None = None
    outputs: Description | None = None
    # The card as the editor read it: a card changed since is not overwritten (two people editing it at once: the
    # second save erased the first's change without a word).
    edited_from: ModelCardText | None = None

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        # Decided on a card that shows the edit before: what it keeps and what it was edited from are read there.
        return (uuid5(_CARD_TURNS, self.registered_model),)


class TagModel(Command):
    registered_model: RegisteredModelName
    tag: TagName


class UntagModel(Command):
    registered_model: RegisteredModelName
    tag: TagName


class RecordSync(Recordable):
    """Say, after uploading an offline run, that its recorded commands arrived (the audit shows it).
    Its command_id is derived from the run's start, so a repeated sync records it once."""

    entity: EntityName
    project: ProjectName
    run_id: RunId
    commands: RecordedCommands
    first_occurred_at: AwareDatetime | None = None
    last_occurred_at: AwareDatetime | None = None
    recorded_on: HostName | None = Field(default=None, description="the recording machine's host name")


MAX_KEY_LIFE_S = 5 * 366 * 86_400  # five years: a key that should outlive that is one that never expires


class IssueApiKey(Command):
    needs = "admin"

    principal_kind: PrincipalKind
    principal_id: PrincipalId
    role: Role = "member"
    label: KeyLabel | None = None
    # Not `scopes`: that is every command's method saying where it acts.
    limited_to: KeyLimits = Field(default=(), description="limit the key to these scopes (a CI key for one model)")
    expires_in_s: int | None = Field(default=None, ge=1, le=MAX_KEY_LIFE_S, description="refused after; None: never")


class RevokeApiKey(Command):
    """The key stops working with the next request that presents it."""

    needs = "admin"

    key_id: KeyId


class GrantRole(Command):
    """Admins of a scope decide who else holds which role there (membership)."""

    needs = "admin"

    principal_kind: PrincipalKind
    principal_id: PrincipalId
    scope: Scope
    role: Role

    def scopes(self) -> tuple[str, ...]:
        return scopes_of_scope(self.scope)


class RevokeRole(Command):
    needs = "admin"

    principal_kind: PrincipalKind
    principal_id: PrincipalId
    scope: Scope

    def scopes(self) -> tuple[str, ...]:
        return scopes_of_scope(self.scope)


class SetVisibility(Command):
    """Make an entity or a registered model private (only who holds a grant there reads it) or public again.
    An admin action on that scope; a model may be made private before its first version is linked."""

    needs = "admin"

    scope: PrivateScope
    private: bool

    def scopes(self) -> tuple[str, ...]:
        return scopes_of_scope(self.scope)


def scopes_of_scope(scope: str) -> tuple[str, ...]:
    """Where a role on `scope` is decided: a model's admins, or the registry's (model_scopes)."""
    return model_scopes(scope.removeprefix("model:")) if scope.startswith("model:") else (scope,)


class ProtectAlias(Command):
    needs = "admin"

    registered_model: RegisteredModelName
    alias: AliasName

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        return (alias_turn(self.registered_model, self.alias),)


class UnprotectAlias(Command):
    needs = "admin"

    registered_model: RegisteredModelName
    alias: AliasName

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        return (alias_turn(self.registered_model, self.alias),)


class TagArtifactVersion(Command):
    entity: EntityName
    project: ProjectName
    name: ArtifactName
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64, description="vN, latest or an alias")
    tag: TagName


class UntagArtifactVersion(TagArtifactVersion):
    pass


class UpdateRunConfig(Recordable, KeyChanges):
    """Keys of a run's config set after `init` (`run.config.update(...)`), or removed."""

    entity: EntityName
    project: ProjectName
    run_id: RunId


class UpdateRunSummary(Recordable, KeyChanges):
    entity: EntityName
    project: ProjectName
    run_id: RunId


class DescribeRun(Recordable):
    """A run's display name, notes, tags or group, changed after `init`; fields left out stay as they are."""

    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: RunName | None = None
    notes: RunNotes | None = None
    tags: RunTags | None = None
    group: RunGroup | None = None


class RecordRunHeartbeat(Command):
    """The training client's "still alive" while its run logs nothing (the server marks a silent run crashed)."""

    entity: EntityName
    project: ProjectName
    run_id: RunId


class ResumeRun(Recordable):
    """Reopen a run that ended, to go on logging to it (W&B's `resume`); a running one stays as it is."""

    entity: EntityName
    project: ProjectName
    run_id: RunId


class RaiseAlert(Recordable):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    title: AlertTitle
    text: AlertText = ""
    level: AlertLevel = "INFO"


class NamedVersionCommand(Command):
    """A command on the version a name gives (`vN`, `latest` or an alias), in that version's turn: the one it had
    when the turn was taken, which the handler checks the name still gives (`in_the_turn_taken`)."""

    entity: EntityName
    project: ProjectName
    name: ArtifactName
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64, description="vN, latest or an alias")
    # The version whose turn this command took: None when the name gave none, unset when no turn was asked for.
    _turn_taken_for: UUID | None | Literal["unasked"] = PrivateAttr(default="unasked")

    async def turns_of(self, reads: ReadModels) -> tuple[UUID, ...]:
        found = await reads.registry.artifact_version_by_ref(self.entity, self.project, self.name, self.version)
        self._turn_taken_for = None if found is None else found["id"]
        return () if found is None else (version_turn(found["id"]),)

    def in_the_turn_taken(self, version_id: UUID) -> bool:
        """Whether the version the name gives now is the one whose turn this command took."""
        return self._turn_taken_for == "unasked" or self._turn_taken_for == version_id


class EditArtifactVersion(NamedVersionCommand):
    """`artifact.save()` of a logged version: a new description or metadata (when given), aliases to add and
    to remove. Adding an alias another version of the collection holds moves it here. In the version's turn: an
    alias added beside its deletion stayed on the deleted version, and left the live one that had it."""

    description: Description | None = None
    metadata: dict[str, Any] | None = None
    aliases_added: Aliases = ()
    aliases_removed: Aliases = ()


class DeleteArtifactVersion(NamedVersionCommand):
    """`artifact.delete()`: refused while the version holds aliases, unless `delete_aliases` (as in W&B)."""

    delete_aliases: bool = False
