"""Events of artifacts: versioned, content-addressed files. Stream: `artifact:<entity>/<project>/<name>`.

Every version of one collection shares the stream, so they land in one partition in log order and the
projection can number them v0, v1, ... deterministically.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelreg.events.envelope import Event
from modelreg.events.identity import PrivateScope
from modelreg.events.names import (
    Aliases,
    AliasName,
    ArtifactName,
    ArtifactType,
    Description,
    Digest,
    EntityName,
    ProjectName,
    RunId,
    TagName,
)
from modelreg.file_paths import file_path_problem


def artifact_stream(entity: str, project: str, name: str) -> str:
    return f"artifact:{entity}/{project}/{name}"


class ManifestEntry(BaseModel):
    """One file of a version: its bytes are in the blob store, or, for a reference, at `ref`.

    A reference (`file://`, `http(s)://`, `s3://` URI) is recorded, not uploaded. Its digest is the sha256
    of its content when the client could hash it, else a digest of the URI and what identifies the
    content there (ETag, size): `modelreg.references.reference_digest` says how.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=0)
    digest: Digest
    ref: str | None = Field(default=None, max_length=4096, pattern=r"^(file|https?|s3)://")

    @field_validator("path")
    @classmethod
    def _path_stays_inside_the_artifact(cls, path: str) -> str:
        if (problem := file_path_problem(path)) is not None:
            raise ValueError(problem)
        return path


# A version of a million files is the most one command may log (the client splits nothing: it refuses more).
Manifest = Annotated[tuple[ManifestEntry, ...], Field(max_length=1_000_000)]


class ArtifactVersionLogged(Event):
    """v2: manifest entries may be references (`ref`); a v1 event reads as v2 with no references."""

    type = "artifacts.version_logged"
    version = 2

    artifact_version_id: UUID
    entity: EntityName
    project: ProjectName
    name: ArtifactName
    artifact_type: ArtifactType
    digest: Digest
    manifest: Manifest = ()
    description: Description | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    aliases: Aliases = ()
    logged_by_run: RunId | None = None


class ArtifactVersionUsed(Event):
    """v2: `scopes` names the used version's entity when it is not the run's: the record, which names the version,
    is then read only by who reads both (projections/readable.py, limited_to), not by every reader of the run."""

    type = "artifacts.version_used"
    version = 2

    artifact_version_id: UUID
    entity: EntityName
    project: ProjectName
    run_id: RunId
    scopes: tuple[PrivateScope, ...] = Field(default=(), max_length=1)


class ArtifactVersionTagged(Event):
    """A tag on one version (`validated`, `golden-set`), searched by when listing versions."""

    type = "artifacts.version_tagged"
    version = 1

    artifact_version_id: UUID
    entity: EntityName
    project: ProjectName
    name: ArtifactName
    tag: TagName


class ArtifactVersionUntagged(Event):
    type = "artifacts.version_untagged"
    version = 1

    artifact_version_id: UUID
    entity: EntityName
    project: ProjectName
    name: ArtifactName
    tag: TagName


class ArtifactVersionEdited(Event):
    """`artifact.save()` of a logged version: its description or metadata replaced (when given), aliases added
    and removed. An alias names one version of a collection: adding it here takes it from any other version."""

    type = "artifacts.version_edited"
    version = 1

    artifact_version_id: UUID
    entity: EntityName
    project: ProjectName
    name: ArtifactName
    description: Description | None = None
    metadata: dict[str, Any] | None = None
    aliases_added: Aliases = ()
    aliases_removed: Aliases = ()


class ArtifactVersionDeleted(Event):
    """`artifact.delete()`: a soft delete. The version leaves every list and ref, its number is never given
    again, and its files stay in the blob store (other versions may hold the same bytes)."""

    type = "artifacts.version_deleted"
    version = 1

    artifact_version_id: UUID
    entity: EntityName
    project: ProjectName
    name: ArtifactName
    aliases_removed: tuple[AliasName, ...] = ()
