"""Registered models: the registry's collections, their linked versions, aliases and action history."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import graphene
from graphene.types.generic import GenericScalar

from modelreg.errors import InvalidInput, NotFound
from modelreg.events.registry import registered_model_stream
from modelreg.graphql.artifacts import ArtifactVersion
from modelreg.graphql.errors import reports_errors
from modelreg.graphql.inputs import parse_command
from modelreg.graphql.pages import (
    decode_cursor,
    decode_key_cursor,
    decode_time_cursor,
    encode_key_cursor,
    encode_time_cursor,
    key_page,
    page,
    page_size,
)
from modelreg.graphql.usage import usage_snippet
from modelreg.services.commands.commands import (
    AddAlias,
    LinkVersion,
    ProtectAlias,
    RemoveAlias,
    TagModel,
    UnlinkVersion,
    UnprotectAlias,
    UntagModel,
    UpdateModelCard,
)


class ModelVersion(graphene.ObjectType):
    registered_model = graphene.String(required=True)
    version = graphene.String(required=True, description="v0, v1, ... in link order within the registered model")
    version_index = graphene.Int(required=True)
    aliases = graphene.List(graphene.NonNull(graphene.String), required=True)
    artifact_version = graphene.Field(ArtifactVersion)
    linked_at = graphene.DateTime(required=True)
    linked_by = graphene.String(required=True)
    usage = graphene.String(required=True, description="Python that pulls this exact version down")

    @staticmethod
    def resolve_version(row: dict, info: graphene.ResolveInfo) -> str:
        return f"v{row['version_index']}"

    @staticmethod
    async def resolve_usage(row: dict, info: graphene.ResolveInfo) -> str:
        source = await info.context.artifact_versions.load(row["artifact_version_id"])
        return usage_snippet(source, row["registered_model"], f"v{row['version_index']}")

    @staticmethod
    async def resolve_artifact_version(row: dict, info: graphene.ResolveInfo) -> dict | None:
        return await info.context.artifact_versions.load(row["artifact_version_id"])


class ModelVersionPage(graphene.ObjectType):
    items = graphene.List(graphene.NonNull(ModelVersion), required=True)
    end_cursor = graphene.String()
    has_next_page = graphene.Boolean(required=True)


class ActionRecord(graphene.ObjectType):
    event_id = graphene.ID(required=True)
    action = graphene.String(required=True)
    actor = graphene.String(required=True)
    occurred_at = graphene.DateTime(required=True, description="when the server received it (what filters go by)")
    recorded_offline_at = graphene.DateTime(
        description="for a run's own commands recorded offline: when its client says it happened (a bounded claim)"
    )
    details = GenericScalar(required=True)

    @staticmethod
    def resolve_action(row: dict, info: graphene.ResolveInfo) -> str:
        return row["type"]

    @staticmethod
    def resolve_actor(row: dict, info: graphene.ResolveInfo) -> str:
        return f"{row['actor_kind']}:{row['actor_id']}"

    @staticmethod
    def resolve_details(row: dict, info: graphene.ResolveInfo) -> dict:
        return row["payload"]


class RegisteredModel(graphene.ObjectType):
    name = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)
    created_by = graphene.String(required=True)
    description = graphene.String(description="the model card, markdown: what the model does")
    inputs = graphene.String(description="what the model expects")
    outputs = graphene.String(description="what the model gives back")
    tags = graphene.List(graphene.NonNull(graphene.String), required=True)
    protected_aliases = graphene.List(
        graphene.NonNull(graphene.String), required=True, description="aliases only the model's admins may move"
    )
    versions = graphene.Field(
        ModelVersionPage,
        required=True,
        first=graphene.Int(default_value=50),
        after=graphene.String(),
        alias=graphene.String(description="only the version holding this alias"),
        tag=graphene.String(description="only versions whose artifact version has this tag"),
        metadata=GenericScalar(description='only versions whose metadata contains this object, e.g. {"lr": 0.01}'),
    )
    alias = graphene.Field(ModelVersion, name=graphene.String(required=True))
    version = graphene.Field(ModelVersion, name=graphene.String(required=True, description="v0, v1, ..."))
    history = graphene.List(graphene.NonNull(ActionRecord), required=True, limit=graphene.Int(default_value=100))

    @staticmethod
    @reports_errors
    async def resolve_versions(
        row: dict,
        info: graphene.ResolveInfo,
        first: int,
        after: str | None = None,
        alias: str | None = None,
        tag: str | None = None,
        metadata: Any = None,
    ) -> dict:
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidInput('metadata must be an object to match, e.g. {"lr": 0.01}')
        limit = page_size(first)
        rows = await info.context.reads.model_versions_page(
            row["name"], after_index=decode_cursor(after), limit=limit + 1, alias=alias, tag=tag, metadata=metadata
        )
        return page(rows, limit, after)

    @staticmethod
    async def resolve_protected_aliases(row: dict, info: graphene.ResolveInfo) -> list[str]:
        return sorted(await info.context.reads.protected_aliases(row["name"]))

    @staticmethod
    async def resolve_alias(row: dict, info: graphene.ResolveInfo, name: str) -> dict | None:
        if name == "latest":  # computed, as for artifacts: the newest linked version
            return await info.context.reads.latest_model_version(row["name"])
        target = await info.context.reads.alias_target(row["name"], name)
        return await _model_version(info, row["name"], target) if target else None

    @staticmethod
    @reports_errors
    async def resolve_version(row: dict, info: graphene.ResolveInfo, name: str) -> dict | None:
        """One linked version by its number (a page of one, so it stays an index scan); None once unlinked."""
        number = name.removeprefix("v")
        if not number.isdigit():
            raise InvalidInput(f"a model version is named v0, v1, ..., not {name!r}")
        rows = await info.context.reads.model_versions_page(row["name"], after_index=int(number) - 1, limit=1)
        return rows[0] if rows and rows[0]["version_index"] == int(number) else None

    @staticmethod
    @reports_errors
    async def resolve_history(row: dict, info: graphene.ResolveInfo, limit: int) -> list[dict]:
        return await info.context.reads.history(registered_model_stream(row["name"]), page_size(limit))


async def _model_after(info: graphene.ResolveInfo, command: Any) -> dict:
    await info.context.app.execute(command, info.context.caller)
    model = await info.context.reads.registered_model(command.registered_model)
    if model is None:
        raise NotFound(f"registered model {command.registered_model!r} is not visible")
    return model


async def _model_version(info: graphene.ResolveInfo, name: str, artifact_version_id: UUID) -> dict:
    row = await info.context.reads.model_version_with_aliases(name, artifact_version_id)
    if row is None:
        raise NotFound(f"artifact version {artifact_version_id} is not linked to {name!r}")
    return row


class RegisteredModelPage(graphene.ObjectType):
    items = graphene.List(graphene.NonNull(RegisteredModel), required=True)
    end_cursor = graphene.String()
    has_next_page = graphene.Boolean(required=True)


class AuditPage(graphene.ObjectType):
    items = graphene.List(graphene.NonNull(ActionRecord), required=True)
    end_cursor = graphene.String()
    has_next_page = graphene.Boolean(required=True)


class ModelQueries(graphene.ObjectType):
    registered_model = graphene.Field(RegisteredModel, name=graphene.String(required=True))
    registered_models = graphene.Field(
        RegisteredModelPage,
        required=True,
        search=graphene.String(description="part of the name"),
        tag=graphene.String(),
        first=graphene.Int(default_value=50),
        after=graphene.String(),
    )
    audit_log = graphene.Field(
        AuditPage,
        required=True,
        actor=graphene.String(description="user:alice, service:ci, automation:<id>"),
        stream=graphene.String(description="e.g. registered_model:nature-classification"),
        action=graphene.String(description="an event type, e.g. registry.alias_added"),
        since=graphene.DateTime(),
        until=graphene.DateTime(),
        first=graphene.Int(default_value=50),
        after=graphene.String(),
        description="Every action, newest first: who did what, to what, when.",
    )

    @staticmethod
    @reports_errors
    async def resolve_registered_models(
        root: Any,
        info: graphene.ResolveInfo,
        first: int,
        search: str | None = None,
        tag: str | None = None,
        after: str | None = None,
    ) -> dict:
        limit = page_size(first)
        after_name = decode_key_cursor(after, 1)
        rows = await info.context.reads.registered_models_page(
            search=search, tag=tag, after_name=after_name[0] if after_name else None, limit=limit + 1
        )
        return key_page(rows, limit, after, lambda last: encode_key_cursor(last["name"]))

    @staticmethod
    @reports_errors
    async def resolve_audit_log(
        root: Any, info: graphene.ResolveInfo, first: int, after: str | None = None, **filters: Any
    ) -> dict:
        limit = page_size(first)
        before = decode_time_cursor(after)
        try:
            position = (before[0], UUID(before[1])) if before else None
        except ValueError:
            raise InvalidInput(f"cursor {after!r} is not one this API returned") from None
        rows = await info.context.reads.audit_page(
            actor=filters.get("actor"),
            stream=filters.get("stream"),
            action=filters.get("action"),
            since=filters.get("since"),
            until=filters.get("until"),
            before=position,
            limit=limit + 1,
        )
        return key_page(rows, limit, after, lambda last: encode_time_cursor(last["occurred_at"], last["event_id"]))

    @staticmethod
    async def resolve_registered_model(root: Any, info: graphene.ResolveInfo, name: str) -> dict | None:
        return await info.context.reads.registered_model(name)


def _version_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not an artifact version id (a UUID)") from None


class ModelMutations(graphene.ObjectType):
    link_artifact_version = graphene.Field(
        ModelVersion,
        required=True,
        registered_model=graphene.String(required=True),
        artifact_version_id=graphene.ID(required=True),
        aliases=graphene.List(graphene.NonNull(graphene.String)),
        command_id=graphene.ID(description="a client's id for this command (UUID): sent again, it changes nothing"),
        occurred_at=graphene.DateTime(
            description="refused: a link's time is the server's; only a run's own commands keep a client's time"
        ),
    )
    add_alias = graphene.Field(
        ModelVersion,
        required=True,
        registered_model=graphene.String(required=True),
        artifact_version_id=graphene.ID(required=True),
        alias=graphene.String(required=True),
        description="Set an alias on a linked version; it moves there from wherever it was.",
    )
    remove_alias = graphene.Field(
        ModelVersion,
        required=True,
        registered_model=graphene.String(required=True),
        alias=graphene.String(required=True),
    )
    unlink_artifact_version = graphene.Field(
        RegisteredModel,
        required=True,
        registered_model=graphene.String(required=True),
        artifact_version_id=graphene.ID(required=True),
        description="Remove a version (and its aliases) from the registered model; its number is not reused.",
    )
    update_model_card = graphene.Field(
        RegisteredModel,
        required=True,
        # `args=`: an argument named `description` would be taken for the field's own description.
        args={
            "registered_model": graphene.String(required=True),
            "description": graphene.String(required=True, description="markdown: what the model does"),
            "inputs": graphene.String(),
            "outputs": graphene.String(),
        },
    )
    tag_registered_model = graphene.Field(
        RegisteredModel,
        required=True,
        registered_model=graphene.String(required=True),
        tag=graphene.String(required=True),
    )
    untag_registered_model = graphene.Field(
        RegisteredModel,
        required=True,
        registered_model=graphene.String(required=True),
        tag=graphene.String(required=True),
    )
    protect_alias = graphene.Field(
        RegisteredModel,
        required=True,
        registered_model=graphene.String(required=True),
        alias=graphene.String(required=True),
        description="Admins only: from now on only the model's admins may set or remove this alias.",
    )
    unprotect_alias = graphene.Field(
        RegisteredModel,
        required=True,
        registered_model=graphene.String(required=True),
        alias=graphene.String(required=True),
    )

    @staticmethod
    @reports_errors
    async def resolve_protect_alias(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        return await _model_after(info, parse_command(ProtectAlias, fields))

    @staticmethod
    @reports_errors
    async def resolve_unprotect_alias(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        return await _model_after(info, parse_command(UnprotectAlias, fields))

    @staticmethod
    @reports_errors
    async def resolve_unlink_artifact_version(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        fields["artifact_version_id"] = _version_id(fields["artifact_version_id"])
        return await _model_after(info, parse_command(UnlinkVersion, fields))

    @staticmethod
    @reports_errors
    async def resolve_update_model_card(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        return await _model_after(info, parse_command(UpdateModelCard, fields))

    @staticmethod
    @reports_errors
    async def resolve_tag_registered_model(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        return await _model_after(info, parse_command(TagModel, fields))

    @staticmethod
    @reports_errors
    async def resolve_untag_registered_model(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        return await _model_after(info, parse_command(UntagModel, fields))

    @staticmethod
    @reports_errors
    async def resolve_link_artifact_version(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        fields["artifact_version_id"] = _version_id(fields["artifact_version_id"])
        command = parse_command(LinkVersion, fields)
        await info.context.app.execute(command, info.context.caller)
        return await _model_version(info, command.registered_model, command.artifact_version_id)

    @staticmethod
    @reports_errors
    async def resolve_add_alias(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        fields["artifact_version_id"] = _version_id(fields["artifact_version_id"])
        command = parse_command(AddAlias, fields)
        await info.context.app.execute(command, info.context.caller)
        return await _model_version(info, command.registered_model, command.artifact_version_id)

    @staticmethod
    @reports_errors
    async def resolve_remove_alias(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        command = parse_command(RemoveAlias, fields)
        accepted = await info.context.app.execute(command, info.context.caller)
        return await _model_version(info, command.registered_model, accepted.subject_id)
