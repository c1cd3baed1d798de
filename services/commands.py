"""Commands: what a caller asks for, in the imperative. Validated by pydantic before any handler sees them.

Each says who may ask: the role it `needs` on the scopes its fields name. The application checks that
before any handler runs; handlers add the checks that need the read models (protected aliases).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from modelreg.events.artifacts import ManifestEntry
from modelreg.events.identity import Role, Scope
from modelreg.events.runs import MetricRow
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
from modelreg.services.access import entity_scopes, model_scopes


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    needs: ClassVar[Role] = "member"

    def scopes(self) -> tuple[str, ...]:
        """Where the command acts, most specific scope first; () is the whole installation."""
        if isinstance(model := getattr(self, "registered_model", None), str):
            return model_scopes(model)
        if isinstance(entity := getattr(self, "entity", None), str):
            return entity_scopes(entity)
        return ()

    def describe(self) -> str:
        return re.sub(r"(?<!^)([A-Z])", r" \1", type(self).__name__).lower()


class StartRun(Command):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    name: str | None = Field(default=None, max_length=200)
    job_type: str | None = Field(default=None, max_length=100)
    config: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)


class FinishRun(Command):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    state: Literal["finished", "failed", "crashed"] = "finished"
    exit_code: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict)


class LogMetrics(Command):
    entity: EntityName
    project: ProjectName
    run_id: RunId
    rows: tuple[MetricRow, ...] = Field(min_length=1, max_length=10_000)


class LogArtifactVersion(Command):
    entity: EntityName
    project: ProjectName
    name: ArtifactName
    artifact_type: ArtifactType
    manifest: tuple[ManifestEntry, ...] = Field(default=(), max_length=1_000_000)
    description: Description | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    aliases: tuple[AliasName, ...] = ()
    run_id: RunId | None = None


class UseArtifactVersion(Command):
    artifact_version_id: UUID
    entity: EntityName
    project: ProjectName
    run_id: RunId


class LinkVersion(Command):
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


class IssueApiKey(Command):
    needs = "admin"

    principal_kind: Literal["user", "service"]
    principal_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$", max_length=200)
    role: Literal["admin", "member", "viewer"] = "member"
    label: str | None = Field(default=None, max_length=200)


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
