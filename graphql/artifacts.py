"""Artifact versions: queries and the log/use mutations."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import graphene

from modelreg.errors import InvalidInput, NotFound
from modelreg.graphql.inputs import command_id_field, parse_command
from modelreg.graphql.json_value import JSONValue
from modelreg.graphql.pages import Cursors, key_page, ordinal, page, page_of, page_size, paged
from modelreg.graphql.references import parse_ref, parse_uuid
from modelreg.graphql.usage import usage_snippet
from modelreg.services.commands.commands import (
    DeleteArtifactVersion,
    EditArtifactVersion,
    LogArtifactVersion,
    TagArtifactVersion,
    UntagArtifactVersion,
    UseArtifactVersion,
)


class ArtifactFile(graphene.ObjectType):
    path = graphene.String(required=True)
    size = graphene.BigInt(required=True)
    digest = graphene.String(required=True)
    ref = graphene.String(
        description="for a reference: where the bytes are (file://, http(s)://, s3://); not in the blob store"
    )

    @staticmethod
    def resolve_ref(entry: dict, info: graphene.ResolveInfo) -> str | None:
        return entry.get("ref")  # versions projected before references existed have no such key


class ArtifactVersion(graphene.ObjectType):
    id = graphene.ID(required=True)
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    name = graphene.String(required=True)
    type = graphene.String(required=True)
    version = graphene.String(required=True, description="v0, v1, ... in log order within the collection")
    version_index = graphene.Int(required=True)
    digest = graphene.String(required=True)
    description = graphene.String()
    metadata = JSONValue(required=True)
    aliases = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="its collection's aliases on it (none shown when the collection is a private entity's you read "
        "the version through a registered model of; so for `tags`)",
    )
    latest = graphene.Boolean(
        required=True,
        description="the newest live version of its collection, the one `:latest` names (false when the collection "
        "is a private entity's you read the version through a registered model of)",
    )
    tags = graphene.List(graphene.NonNull(graphene.String), required=True)
    files = graphene.List(graphene.NonNull(ArtifactFile), required=True)
    logged_by_run = graphene.String()
    created_at = graphene.DateTime(required=True)
    created_by = graphene.String(required=True)
    deleted_at = graphene.DateTime(
        description="when it was deleted (artifact.delete()); a deleted version leaves refs and lists"
    )
    size = graphene.BigInt(required=True, description="the bytes of its files together")
    usage = graphene.String(required=True, description="Python that pulls this exact version down")
    # By import path: the registry's types build on this one.
    linked_to = graphene.List(
        graphene.NonNull("modelreg.graphql.models.ModelVersion"),
        required=True,
        description="the registered models' versions that link it",
    )

    @staticmethod
    def resolve_usage(row: dict, info: graphene.ResolveInfo) -> str:
        return usage_snippet(row)

    @staticmethod
    async def resolve_latest(row: dict, info: graphene.ResolveInfo) -> bool:
        if row.get("deleted_at") is not None:
            return False
        if not info.context.readable.entity(row["entity"]):
            return False  # whether the collection has newer versions is the private entity's to tell
        newest = await info.context.newest_versions.load((row["entity"], row["project"], row["name"]))
        return bool(newest == row["version_index"])

    @staticmethod
    async def resolve_linked_to(row: dict, info: graphene.ResolveInfo) -> list[dict]:
        readable = info.context.readable
        return [
            link for link in await info.context.reads.links_of(row["id"]) if readable.model(link["registered_model"])
        ]

    @staticmethod
    def resolve_aliases(row: dict, info: graphene.ResolveInfo) -> list[str]:
        """The collection's aliases and the version's tags are the private entity's own labels: read through a
        registered model, they would tell a reader of the model when the entity moves `best` to a newer version."""
        return row.get("aliases", []) if info.context.readable.entity(row["entity"]) else []

    @staticmethod
    def resolve_tags(row: dict, info: graphene.ResolveInfo) -> list[str]:
        return row.get("tags", []) if info.context.readable.entity(row["entity"]) else []

    @staticmethod
    def resolve_logged_by_run(row: dict, info: graphene.ResolveInfo) -> str | None:
        """A version published from a private entity is read through its registered model; the run that
        logged it is part of the rest of that entity's project, which the reader may not see."""
        return row["logged_by_run"] if info.context.readable.entity(row["entity"]) else None

    @staticmethod
    def resolve_type(row: dict, info: graphene.ResolveInfo) -> str:
        return row["artifact_type"]

    @staticmethod
    def resolve_version(row: dict, info: graphene.ResolveInfo) -> str:
        return f"v{row['version_index']}"

    @staticmethod
    async def resolve_files(row: dict, info: graphene.ResolveInfo) -> list[dict]:
        return (await _with_contents(row, info))["manifest"]

    @staticmethod
    async def resolve_size(row: dict, info: graphene.ResolveInfo) -> int:
        return sum(int(entry["size"]) for entry in (await _with_contents(row, info))["manifest"])

    @staticmethod
    async def resolve_metadata(row: dict, info: graphene.ResolveInfo) -> Any:
        return (await _with_contents(row, info))["metadata"]


async def _with_contents(row: dict, info: graphene.ResolveInfo) -> dict:
    """`row` with its files (`manifest`) and metadata: lists and lookups by id read versions without them
    (projections/registry_queries.py says why), and they are read here when a field asks."""
    if "manifest" not in row:
        contents = await info.context.version_contents.load(row["id"])
        row["manifest"] = contents["manifest"] if contents else []
        row["metadata"] = contents["metadata"] if contents else {}
    return row


ArtifactVersionPage = page_of(ArtifactVersion)


class ArtifactCollection(graphene.ObjectType):
    """All versions of one artifact name in a project (W&B's artifact collection)."""

    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    name = graphene.String(required=True)
    type = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)
    version_count = graphene.Int(required=True, description="its versions not deleted")

    @staticmethod
    def resolve_type(row: dict, info: graphene.ResolveInfo) -> str:
        return row["artifact_type"]


ArtifactCollectionPage = page_of(ArtifactCollection)
ArtifactTypePage = page_of(graphene.String, name="ArtifactTypePage")


class ArtifactQueries(graphene.ObjectType):
    artifact_version = graphene.Field(
        ArtifactVersion,
        id=graphene.ID(description="the version's id"),
        ref=graphene.String(description="entity/project/name:v3, :latest or :<alias>"),
    )
    artifact_versions = paged(
        ArtifactVersionPage,
        entity=graphene.String(required=True),
        project=graphene.String(required=True),
        name=graphene.String(required=True),
        description="A collection's versions, oldest first.",
    )
    artifact_collections = paged(
        ArtifactCollectionPage,
        entity=graphene.String(required=True),
        project=graphene.String(required=True),
        type=graphene.String(description="only collections of this artifact type"),
        description="A project's artifact collections, by name.",
    )
    artifact_types = paged(
        ArtifactTypePage,
        entity=graphene.String(required=True),
        project=graphene.String(required=True),
        description="The artifact types a project's collections have, by name.",
    )

    @staticmethod
    async def resolve_artifact_collections(
        root: Any,
        info: graphene.ResolveInfo,
        entity: str,
        project: str,
        first: int,
        after: str | None = None,
        type: str | None = None,
    ) -> dict:
        limit = page_size(first)
        cursors = Cursors.of(info)
        cursor = cursors.decode(after, str)
        if not info.context.readable.entity(entity):  # a private team's collections: as if it had none
            return {"items": [], "end_cursor": after, "has_next_page": False}
        rows = await info.context.reads.artifact_collections_page(
            entity, project, type, after_name=cursor[0] if cursor else None, limit=limit + 1
        )
        return key_page(rows, limit, after, lambda last: cursors.encode(last["name"]))

    @staticmethod
    async def resolve_artifact_types(
        root: Any, info: graphene.ResolveInfo, entity: str, project: str, first: int, after: str | None = None
    ) -> dict:
        limit = page_size(first)
        cursors = Cursors.of(info)
        cursor = cursors.decode(after, str)
        if not info.context.readable.entity(entity):
            return {"items": [], "end_cursor": after, "has_next_page": False}
        names = [t for t in await info.context.reads.artifact_types(entity, project) if not cursor or t > cursor[0]]
        found = key_page(
            [{"name": t} for t in names[: limit + 1]], limit, after, lambda last: cursors.encode(last["name"])
        )
        return {**found, "items": [item["name"] for item in found["items"]]}

    @staticmethod
    async def resolve_artifact_version(
        root: Any, info: graphene.ResolveInfo, id: str | None = None, ref: str | None = None
    ) -> dict | None:
        if (id is None) == (ref is None):
            raise InvalidInput("give exactly one of id or ref")
        if id is not None:
            return await info.context.artifact_versions.load(parse_uuid("id", id))
        assert ref is not None  # exactly one of id or ref, checked above
        return await info.context.version_by_ref(*parse_ref(ref))

    @staticmethod
    async def resolve_artifact_versions(
        root: Any,
        info: graphene.ResolveInfo,
        entity: str,
        project: str,
        name: str,
        first: int,
        after: str | None = None,
    ) -> dict:
        limit, cursors = page_size(first), Cursors.of(info)
        position = cursors.decode(after, ordinal)
        if not info.context.readable.entity(entity):
            # Versions of it linked into a model the caller reads are reached through that model, not here.
            return page([], limit, after, cursors)
        rows = await info.context.reads.artifact_versions_page(
            entity, project, name, after_index=position[0] if position else None, limit=limit + 1
        )
        return page(rows, limit, after, cursors)


class ArtifactFileInput(graphene.InputObjectType):
    path = graphene.String(required=True)
    size = graphene.BigInt(required=True)
    digest = graphene.String(required=True, description="sha256:<64 hex>")
    ref = graphene.String(description="a reference's URI: the file is recorded, not uploaded")


class LogArtifactVersionInput(graphene.InputObjectType):
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    name = graphene.String(required=True)
    type = graphene.String(required=True)
    files = graphene.List(graphene.NonNull(ArtifactFileInput))
    description = graphene.String()
    metadata = JSONValue()
    aliases = graphene.List(graphene.NonNull(graphene.String))
    run_id = graphene.String(description="the run that produced it (lineage)")
    id = graphene.ID(
        description="a UUIDv7 chosen by a client that logged it offline; sent again, the same version comes back"
    )
    command_id = command_id_field()
    occurred_at = graphene.DateTime(description="when it happened on the client (offline runs), with a zone")


class UseArtifactVersionInput(graphene.InputObjectType):
    artifact_version_id = graphene.ID(required=True)
    entity = graphene.String(required=True)
    project = graphene.String(required=True)
    run_id = graphene.String(required=True)
    command_id = command_id_field()
    occurred_at = graphene.DateTime(description="when it happened on the client (offline runs), with a zone")


class TagArtifactVersionInput(graphene.InputObjectType):
    ref = graphene.String(required=True, description="entity/project/name:v3 (or :latest, :<alias>)")
    tag = graphene.String(required=True)


class UntagArtifactVersionInput(TagArtifactVersionInput):
    pass


class EditArtifactVersionInput(graphene.InputObjectType):
    ref = graphene.String(required=True, description="entity/project/name:v3 (or :latest, :<alias>)")
    description = graphene.String()
    metadata = JSONValue(description="replaces the version's metadata")
    aliases_added = graphene.List(graphene.NonNull(graphene.String), description="taken from other versions")
    aliases_removed = graphene.List(graphene.NonNull(graphene.String))


class DeleteArtifactVersionInput(graphene.InputObjectType):
    ref = graphene.String(required=True, description="entity/project/name:v3 (or :latest, :<alias>)")
    delete_aliases = graphene.Boolean(description="delete it even though it holds aliases (they are removed)")


class ArtifactMutations(graphene.ObjectType):
    edit_artifact_version = graphene.Field(
        ArtifactVersion,
        required=True,
        input=EditArtifactVersionInput(required=True),
        description="W&B's artifact.save() of a logged version: description, metadata and aliases, as an event.",
    )
    delete_artifact_version = graphene.Field(
        ArtifactVersion,
        required=True,
        input=DeleteArtifactVersionInput(required=True),
        description=(
            "A soft delete: the version leaves refs and lists, its number is never reused, its files stay stored "
            "but download only through other versions listing them."
        ),
    )

    @staticmethod
    async def resolve_edit_artifact_version(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        fields = dict(input)
        entity, project, name, version = parse_ref(fields.pop("ref"))
        fields.update(entity=entity, project=project, name=name, version=version)
        accepted = await info.context.app.execute(parse_command(EditArtifactVersion, fields), info.context.caller)
        return await _visible_version(info, accepted.subject_id)

    @staticmethod
    async def resolve_delete_artifact_version(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        fields = dict(input)
        entity, project, name, version = parse_ref(fields.pop("ref"))
        fields.update(entity=entity, project=project, name=name, version=version)
        accepted = await info.context.app.execute(parse_command(DeleteArtifactVersion, fields), info.context.caller)
        return await _visible_version(info, accepted.subject_id)

    log_artifact_version = graphene.Field(
        ArtifactVersion,
        required=True,
        input=LogArtifactVersionInput(required=True),
        description="Log a new version (or get the newest one back if its content is identical).",
    )
    use_artifact_version = graphene.Field(ArtifactVersion, required=True, input=UseArtifactVersionInput(required=True))
    tag_artifact_version = graphene.Field(ArtifactVersion, required=True, input=TagArtifactVersionInput(required=True))
    untag_artifact_version = graphene.Field(
        ArtifactVersion, required=True, input=UntagArtifactVersionInput(required=True)
    )

    @staticmethod
    async def resolve_tag_artifact_version(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        return await _tagged(info, TagArtifactVersion, input["ref"], input["tag"])

    @staticmethod
    async def resolve_untag_artifact_version(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        return await _tagged(info, UntagArtifactVersion, input["ref"], input["tag"])

    @staticmethod
    async def resolve_log_artifact_version(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        fields = dict(input)
        fields["artifact_type"] = fields.pop("type")
        fields["manifest"] = fields.pop("files", None)
        given_id = fields.pop("id", None)
        fields["artifact_version_id"] = parse_uuid("id", given_id) if given_id is not None else None
        command = parse_command(LogArtifactVersion, fields)
        accepted = await info.context.app.execute(command, info.context.caller)
        return await _visible_version(info, accepted.subject_id)

    @staticmethod
    async def resolve_use_artifact_version(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        fields = {**input, "artifact_version_id": parse_uuid("artifactVersionId", input["artifact_version_id"])}
        command = parse_command(UseArtifactVersion, fields)
        accepted = await info.context.app.execute(command, info.context.caller)
        return await _visible_version(info, accepted.subject_id)


async def _tagged(info: graphene.ResolveInfo, kind: type[TagArtifactVersion], ref: str, tag: str) -> dict:
    entity, project, name, version = parse_ref(ref)
    command = parse_command(kind, {"entity": entity, "project": project, "name": name, "version": version, "tag": tag})
    accepted = await info.context.app.execute(command, info.context.caller)
    return await _visible_version(info, accepted.subject_id)


async def _visible_version(info: graphene.ResolveInfo, version_id: UUID) -> dict:
    row = await info.context.reads.artifact_version(version_id)
    if row is None:
        raise NotFound(f"artifact version {version_id} is not visible")
    return row
