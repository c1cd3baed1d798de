"""Commands: what a caller asks for, in the imperative. Validated by pydantic before any handler sees them.

Each says who may ask: the role it `needs` on the scopes its fields name. The application checks that
before any handler runs; handlers add the checks that need the read models (protected aliases).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from modelreg.events.artifacts import ManifestEntry
from modelreg.events.identity import Role, Scope
from modelreg.events.names import (
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
from modelreg.events.runs import MetricRow, RunTags
from modelreg.events.storable_text import UnstorableText, refuse_unstorable
from modelreg.services.commands.access import entity_scopes, model_scopes

if TYPE_CHECKING:
    from modelreg.projections.registry_queries import RegistryQueries


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

    async def scopes_in(self, reads: RegistryQueries) -> tuple[str, ...]:
        """`scopes()`, for the application's check; a command that names only an id (a job, an automation)
        looks up where that thing lives in the read models."""
        return self.scopes()

    def describe(self) -> str:
        return re.sub(r"(?<!^)([A-Z])", r" \1", type(self).__name__).lower()


# A client's clock may run a little ahead of ours; more than this is a wrong clock, not skew.
CLOCK_SKEW = timedelta(minutes=5)


class Recordable(Command):
    """A command a client may have recorded earlier (offline) and sends now.

    `command_id` is the client's idempotency key: the command's events carry it as their causation id, and
    the same command sent again (a sync run twice, or resumed after a cut) is a no-op. `occurred_at` is
    when it happened on the client: a claim, kept beside the server's time of receipt as the events'
    `recorded_offline_at`, and only for a run's own commands, bounded by the run's start
    (services/commands/offline_claims.py). Audit, filters and history go by the server's time.
    """

    command_id: UUID | None = None
    occurred_at: AwareDatetime | None = None

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, occurred_at: datetime | None) -> datetime | None:
        if occurred_at is not None and occurred_at > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError(
                f"{occurred_at.isoformat()} is in the future: check the clock of the machine that recorded it"
            )
        return occurred_at

    def facts(self) -> dict[str, Any]:
        """The fields that become the event's payload (the id and time go to its envelope)."""
        return self.model_dump(exclude={"command_id", "occurred_at"})

    def claiming_run(self) -> tuple[str, str, str] | None:
        """The run whose own history this command is (entity, project, run id): the only commands whose
        time a client may claim. A link, or a version logged outside a run, is not part of one."""
        run_id = getattr(self, "run_id", None)
        return (self.entity, self.project, run_id) if run_id else None


class StartRun(Recordable):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: str | None = Field(default=None, max_length=200)
    job_type: str | None = Field(default=None, max_length=100)
    config: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    notes: str | None = Field(default=None, max_length=100_000)
    tags: RunTags = ()
    group: str | None = Field(default=None, max_length=200)


class FinishRun(Recordable):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    state: Literal["finished", "failed", "crashed"] = "finished"
    exit_code: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict)


class LogMetrics(Recordable):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    rows: tuple[MetricRow, ...] = Field(min_length=1, max_length=10_000)


class LogArtifactVersion(Recordable):
    entity: EntityName
    project: ProjectName
    name: ArtifactName
    artifact_type: ArtifactType
    manifest: tuple[ManifestEntry, ...] = Field(default=(), max_length=1_000_000)
    description: Description | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    aliases: tuple[AliasName, ...] = ()
    run_id: RunId | None = None
    # Chosen by a client that logged the version offline, so that later commands can name it. A UUIDv7,
    # like the ids the server mints.
    artifact_version_id: UUID | None = None

    @field_validator("artifact_version_id")
    @classmethod
    def _a_uuid7(cls, value: UUID | None) -> UUID | None:
        if value is not None and value.version != 7:
            raise ValueError("a client-chosen artifact version id must be a UUIDv7 (uuid_utils.uuid7())")
        return value


class UseArtifactVersion(Recordable):
    artifact_version_id: UUID
    entity: EntityName
    project: ProjectName
    run_id: RunId


class LinkVersion(Recordable):
    registered_model: RegisteredModelName
    artifact_version_id: UUID
    aliases: tuple[AliasName, ...] = ()


class AddAlias(Command):
    registered_model: RegisteredModelName
    artifact_version_id: UUID
    alias: AliasName


class RemoveAlias(Command):
    registered_model: RegisteredModelName
    alias: AliasName


class UnlinkVersion(Command):
    registered_model: RegisteredModelName
    artifact_version_id: UUID


class UpdateModelCard(Command):
    registered_model: RegisteredModelName
    description: Description
    inputs: Description | None = None
    outputs: Description | None = None


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
    commands: int = Field(ge=0)
    first_occurred_at: AwareDatetime | None = None
    last_occurred_at: AwareDatetime | None = None
    recorded_on: str | None = Field(default=None, max_length=200, description="the recording machine's host name")


class IssueApiKey(Command):
    needs = "admin"

    principal_kind: Literal["user", "service"]
    principal_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$", max_length=200)
    role: Literal["admin", "member", "viewer"] = "member"
    label: str | None = Field(default=None, max_length=200)


class RevokeApiKey(Command):
    """The key stops working with the next request that presents it."""

    needs = "admin"

    key_id: str = Field(pattern=r"^[a-z0-9]{12}$", description="the part after mr_ in the key")


class GrantRole(Command):
    """Admins of a scope decide who else holds which role there (membership)."""

    needs = "admin"

    principal_kind: Literal["user", "service"]
    principal_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$", max_length=200)
    scope: Scope
    role: Literal["admin", "member", "viewer"]

    def scopes(self) -> tuple[str, ...]:
        return _scopes_of(self.scope)


class RevokeRole(Command):
    needs = "admin"

    principal_kind: Literal["user", "service"]
    principal_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$", max_length=200)
    scope: Scope

    def scopes(self) -> tuple[str, ...]:
        return _scopes_of(self.scope)


def _scopes_of(scope: str) -> tuple[str, ...]:
    return model_scopes(scope.removeprefix("model:")) if scope.startswith("model:") else (scope,)


class ProtectAlias(Command):
    needs = "admin"

    registered_model: RegisteredModelName
    alias: AliasName


class UnprotectAlias(Command):
    needs = "admin"

    registered_model: RegisteredModelName
    alias: AliasName


class TagArtifactVersion(Command):
    entity: EntityName
    project: ProjectName
    name: ArtifactName
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64, description="vN, latest or an alias")
    tag: TagName


class UntagArtifactVersion(TagArtifactVersion):
    pass


class UpdateRunConfig(Recordable):
    """Keys of a running run's config set after `init` (`run.config.update(...)`)."""

    entity: EntityName
    project: ProjectName
    run_id: RunId
    changes: dict[str, Any] = Field(min_length=1)


class UpdateRunSummary(Recordable):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    changes: dict[str, Any] = Field(min_length=1)


class DescribeRun(Recordable):
    """A run's display name, notes, tags or group, changed after `init`; fields left out stay as they are."""

    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=100_000)
    tags: RunTags | None = None
    group: str | None = Field(default=None, max_length=200)


class ResumeRun(Recordable):
    """Reopen a run that ended, to go on logging to it (W&B's `resume`); a running one stays as it is."""

    entity: EntityName
    project: ProjectName
    run_id: RunId


class RaiseAlert(Recordable):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    title: str = Field(min_length=1, max_length=500)
    text: str = Field(default="", max_length=10_000)
    level: Literal["INFO", "WARN", "ERROR"] = "INFO"


class EditArtifactVersion(Command):
    """`artifact.save()` of a logged version: a new description or metadata (when given), aliases to add and
    to remove. Adding an alias another version of the collection holds moves it here."""

    entity: EntityName
    project: ProjectName
    name: ArtifactName
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64, description="vN, latest or an alias")
    description: Description | None = None
    metadata: dict[str, Any] | None = None
    aliases_added: tuple[AliasName, ...] = ()
    aliases_removed: tuple[AliasName, ...] = ()


class DeleteArtifactVersion(Command):
    """`artifact.delete()`: refused while the version holds aliases, unless `delete_aliases` (as in W&B)."""

    entity: EntityName
    project: ProjectName
    name: ArtifactName
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64, description="vN, latest or an alias")
    delete_aliases: bool = False
