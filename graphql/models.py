"""Registered models: the registry's collections, their linked versions, aliases and action history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import graphene
from pydantic import BaseModel

from modelreg.errors import InvalidInput, NotFound, quoted
from modelreg.events.catalog import EVENT_TYPES
from modelreg.events.envelope import ACTOR_KINDS
from modelreg.events.filters import known_types
from modelreg.events.registry import registered_model_stream
from modelreg.graphql.artifacts import ArtifactVersion
from modelreg.graphql.inputs import command_id_field, parse_command
from modelreg.graphql.json_value import JSONValue
from modelreg.graphql.pages import Cursors, key_page, ordinal, page, page_of, page_size, paged
from modelreg.graphql.references import parse_uuid, parse_version_name
from modelreg.graphql.usage import usage_snippet
from modelreg.projections.timestamps import parsed_time, storable_time
from modelreg.services.automations.shown_urls import (
    BY_ITS_CREATOR,
    CARRY_A_URL,
    payload_shown_to_others,
    reads_whole_urls,
)
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
        if source is None:  # not projected yet, or not readable: no ref to show
            return ""
        return usage_snippet(source, row["registered_model"], f"v{row['version_index']}")

    @staticmethod
    async def resolve_artifact_version(row: dict, info: graphene.ResolveInfo) -> dict | None:
        return await info.context.artifact_versions.load(row["artifact_version_id"])


ModelVersionPage = page_of(ModelVersion)


class ActionRecord(graphene.ObjectType):
    event_id = graphene.ID(required=True)
    action = graphene.String(required=True)
    actor = graphene.String(required=True)
    occurred_at = graphene.DateTime(required=True, description="when the server received it (what filters go by)")
    recorded_offline_at = graphene.DateTime(
        description="for a run's own commands recorded offline: when its client says it happened (a bounded claim)"
    )
    details = JSONValue(
        required=True,
        description="what was done (the event's payload); a webhook's url whole to its automation's creator only",
    )
    correlation_id = graphene.ID(
        required=True, description="the chain it belongs to: a command's first event, or the launched job that did it"
    )
    causation_id = graphene.ID(description="the event that caused it (an automation's firing), if any")

    @staticmethod
    def resolve_action(row: dict, info: graphene.ResolveInfo) -> str:
        return row["type"]

    @staticmethod
    def resolve_actor(row: dict, info: graphene.ResolveInfo) -> str:
        return f"{row['actor_kind']}:{row['actor_id']}"

    @staticmethod
    async def resolve_details(row: dict, info: graphene.ResolveInfo) -> dict:
        if "payload" not in row:  # a page of records is read without them (projections/audit_queries.py)
            details = await info.context.audit_details.load(row["event_id"])
            row["payload"] = details["payload"] if details else {}
        if row["type"] in CARRY_A_URL and not reads_whole_urls(info.context.caller, await _creator(info, row)):
            return payload_shown_to_others(row["type"], row["payload"])
        return row["payload"]


async def _creator(info: graphene.ResolveInfo, record: dict) -> str | None:
    """Who created the automation an audit record is about: its actor, when it created or changed it."""
    if record["type"] in BY_ITS_CREATOR:
        return f"{record['actor_kind']}:{record['actor_id']}"
    kind, _, automation_id = record["stream"].partition(":")
    try:
        found = UUID(automation_id) if kind == "automation" else None
    except ValueError:
        found = None
    return None if found is None else await info.context.automation_creators.load(found)


ActionRecordPage = page_of(ActionRecord)


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
    versions = paged(
        ModelVersionPage,
        alias=graphene.String(description="only the version holding this alias"),
        tag=graphene.String(description="only versions whose artifact version has this tag"),
        metadata=JSONValue(description='only versions whose metadata contains this object, e.g. {"lr": 0.01}'),
        newest_first=graphene.Boolean(default_value=False, description="the newest linked first (W&B's order)"),
    )
    version_count = graphene.Int(required=True, description="how many versions are linked to it")
    alias = graphene.Field(ModelVersion, name=graphene.String(required=True))
    version = graphene.Field(ModelVersion, name=graphene.String(required=True, description="v0, v1, ..."))
    history = paged(
        ActionRecordPage,
        first=100,
        description="what was done to the model, newest first",
        artifact_version_id=graphene.ID(
            description="only the actions on this version (linked, aliases set and removed, unlinked), not the "
            "model's card or tags"
        ),
    )
    private = graphene.Boolean(
        required=True, description="only principals with a grant on it (or an admin key) read it (setVisibility)"
    )

    @staticmethod
    def resolve_private(row: dict, info: graphene.ResolveInfo) -> bool:
        return f"model:{row['name']}" in info.context.caller.private

    @staticmethod
    async def resolve_versions(
        row: dict,
        info: graphene.ResolveInfo,
        first: int,
        after: str | None = None,
        alias: str | None = None,
        tag: str | None = None,
        metadata: Any = None,
        newest_first: bool = False,
    ) -> dict:
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidInput('metadata must be an object to match, e.g. {"lr": 0.01}')
        # A cursor of one order is no cursor of the other: it names its order.
        limit, cursors = page_size(first), Cursors.of(info, "newest first" if newest_first else None)
        position = cursors.decode(after, ordinal)
        rows = await info.context.reads.model_versions_page(
            row["name"],
            after_index=position[0] if position else None,
            limit=limit + 1,
            alias=alias,
            tag=tag,
            metadata=metadata,
            newest_first=bool(newest_first),
        )
        return page(rows, limit, after, cursors)

    @staticmethod
    async def resolve_version_count(row: dict, info: graphene.ResolveInfo) -> int:
        return await info.context.reads.model_version_count(row["name"])

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
    async def resolve_version(row: dict, info: graphene.ResolveInfo, name: str) -> dict | None:
        """One linked version by its number (a page of one, so it stays an index scan); None once unlinked."""
        number = parse_version_name(name)
        rows = await info.context.reads.model_versions_page(row["name"], after_index=number - 1, limit=1)
        return rows[0] if rows and rows[0]["version_index"] == number else None

    @staticmethod
    async def resolve_history(
        row: dict,
        info: graphene.ResolveInfo,
        first: int,
        after: str | None = None,
        artifact_version_id: str | None = None,
    ) -> dict:
        limit, cursors = page_size(first), Cursors.of(info)
        version = None if artifact_version_id is None else parse_uuid("artifactVersionId", artifact_version_id)
        position = cursors.decode(after, ordinal)
        rows = await info.context.audit.history(
            registered_model_stream(row["name"]),
            limit + 1,
            before_seq=position[0] if position else None,
            artifact_version=version,
        )
        return key_page(rows, limit, after, lambda last: cursors.encode(last["stream_seq"]))


async def _model_after(info: graphene.ResolveInfo, command: Any) -> dict:
    await info.context.app.execute(command, info.context.caller)
    model = await info.context.reads.registered_model(command.registered_model)
    if model is None:
        raise NotFound(f"registered model {quoted(command.registered_model)} is not visible")
    return model


async def _model_version(info: graphene.ResolveInfo, name: str, artifact_version_id: UUID) -> dict:
    row = await info.context.reads.model_version_with_aliases(name, artifact_version_id)
    if row is None:
        raise NotFound(f"artifact version {artifact_version_id} is not linked to {quoted(name)}")
    return row


RegisteredModelPage = page_of(RegisteredModel)


class ModelQueries(graphene.ObjectType):
    registered_model = graphene.Field(RegisteredModel, name=graphene.String(required=True))
    registered_models = paged(
        RegisteredModelPage, search=graphene.String(description="part of the name"), tag=graphene.String()
    )
    audit_log = paged(
        ActionRecordPage,
        actor=graphene.String(description="user:alice, service:ci, automation:<id>"),
        stream=graphene.String(description="e.g. registered_model:nature-classification"),
        action=graphene.String(description="an event type, e.g. registry.alias_added"),
        actions=graphene.List(
            graphene.NonNull(graphene.String),
            description="any of these event types (a run page's changes, without its metric batches)",
        ),
        since=graphene.DateTime(),
        until=graphene.DateTime(),
        description="Every action, newest first: who did what, to what, when. Identity events (identity.*: keys, "
        "roles, privacy) only to installation admins, and to each principal those of its own keys and grants.",
    )
    audit_actions = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="the actions (event types) auditLog's `action` filter takes, by name",
    )

    @staticmethod
    async def resolve_registered_models(
        root: Any,
        info: graphene.ResolveInfo,
        first: int,
        search: str | None = None,
        tag: str | None = None,
        after: str | None = None,
    ) -> dict:
        limit, cursors = page_size(first), Cursors.of(info)
        after_name = cursors.decode(after, str)
        rows = await info.context.reads.registered_models_page(
            search=search,
            tag=tag,
            after_name=after_name[0] if after_name else None,
            limit=limit + 1,
            hidden=sorted(info.context.readable.hidden_models),
        )
        return key_page(rows, limit, after, lambda last: cursors.encode(last["name"]))

    @staticmethod
    def resolve_audit_actions(root: Any, info: graphene.ResolveInfo) -> list[str]:
        info.context.caller  # noqa: B018 -- asked of a request with a caller, as every read is
        return sorted(EVENT_TYPES)

    @staticmethod
    async def resolve_audit_log(
        root: Any, info: graphene.ResolveInfo, first: int, after: str | None = None, **filters: Any
    ) -> dict:
        limit, cursors = page_size(first), Cursors.of(info)
        position = cursors.decode(after, parsed_time, UUID)
        # A filter no record could match is refused saying what is valid: `registry.alias_addd` or `alice` (no
        # kind) answered an empty page, as if nobody had done it.
        known_types([filters["action"]] if filters.get("action") is not None else [])
        known_types(filters.get("actions") or [])
        rows = await info.context.audit.audit_page(
            actor=_acting(filters.get("actor")),
            stream=filters.get("stream"),
            action=filters.get("action"),
            actions=filters.get("actions"),
            since=_bound(filters.get("since"), "since"),
            until=_bound(filters.get("until"), "until"),
            before=position,
            limit=limit + 1,
            hidden_scopes=info.context.readable.hidden_scopes(),
            identity_streams=info.context.readable.identity_streams_read(),
            administered=info.context.readable.administered_scopes()[0],
            not_administered=info.context.readable.administered_scopes()[1],
        )
        return key_page(rows, limit, after, lambda last: cursors.encode(last["occurred_at"], last["event_id"]))

    @staticmethod
    async def resolve_registered_model(root: Any, info: graphene.ResolveInfo, name: str) -> dict | None:
        if not info.context.readable.model(name):
            return None  # a private model is, to who may not read it, a model that does not exist
        return await info.context.reads.registered_model(name)


def _acting(actor: str | None) -> str | None:
    """An audit filter's actor, named as records name who acted: `kind:id`."""
    kind, _, ident = (actor or "").partition(":")
    if actor is not None and (kind not in ACTOR_KINDS or not ident):
        raise InvalidInput(
            f"actor {actor!r} matches no record: write it as kind:id, the kind one of {', '.join(ACTOR_KINDS)} "
            "(user:alice, service:ci)"
        )
    return actor


class RegisteredModelInput(graphene.InputObjectType):
    registered_model = graphene.String(required=True)


class LinkArtifactVersionInput(RegisteredModelInput):
    artifact_version_id = graphene.ID(required=True)
    aliases = graphene.List(graphene.NonNull(graphene.String))
    command_id = command_id_field()
    occurred_at = graphene.DateTime(
        description="refused: a link's time is the server's; only a run's own commands keep a client's time"
    )


class AddAliasInput(RegisteredModelInput):
    artifact_version_id = graphene.ID(required=True)
    alias = graphene.String(required=True)
    command_id = command_id_field()


class RemoveAliasInput(RegisteredModelInput):
    alias = graphene.String(required=True)
    command_id = command_id_field()


class UnlinkArtifactVersionInput(RegisteredModelInput):
    artifact_version_id = graphene.ID(required=True)
    command_id = command_id_field()


class ModelCardTextInput(graphene.InputObjectType):
    description = graphene.String()
    inputs = graphene.String()
    outputs = graphene.String()


class UpdateModelCardInput(RegisteredModelInput):
    description = graphene.String(required=True, description="markdown: what the model does")
    inputs = graphene.String(description="what the model expects (left out: as it is; empty: none)")
    outputs = graphene.String(description="what the model gives back (left out: as it is; empty: none)")
    edited_from = graphene.Field(
        ModelCardTextInput,
        description="the card as the editor read it: if it changed since, the edit is refused (CONFLICT) rather than "
        "erasing the other change; left out, the card is replaced whatever it is now",
    )


class TagRegisteredModelInput(RegisteredModelInput):
    tag = graphene.String(required=True)


class UntagRegisteredModelInput(TagRegisteredModelInput):
    pass


class ProtectAliasInput(RegisteredModelInput):
    alias = graphene.String(required=True)


class UnprotectAliasInput(ProtectAliasInput):
    pass


def _command(kind: type[BaseModel], input: dict) -> Any:
    fields = dict(input)
    if "artifact_version_id" in fields:
        fields["artifact_version_id"] = parse_uuid("artifactVersionId", fields["artifact_version_id"])
    return parse_command(kind, fields)


def _changes_model(kind: type[BaseModel]) -> Callable[..., Awaitable[dict]]:
    """The resolver of a mutation that changes the model itself: the command, then the model as it is now."""

    async def resolve(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        return await _model_after(info, _command(kind, input))

    return resolve


def _changes_version(kind: type[BaseModel]) -> Callable[..., Awaitable[dict]]:
    """The resolver of a mutation that changes one linked version: the command, then that version."""

    async def resolve(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        command = _command(kind, input)
        accepted = await info.context.app.execute(command, info.context.caller)
        version_id = getattr(command, "artifact_version_id", None) or accepted.subject_id
        return await _model_version(info, command.registered_model, version_id)

    return resolve


class ModelMutations(graphene.ObjectType):
    link_artifact_version = graphene.Field(
        ModelVersion,
        required=True,
        input=LinkArtifactVersionInput(required=True),
        resolver=_changes_version(LinkVersion),
        description="Link an artifact version to the registered model, as its next version.",
    )
    add_alias = graphene.Field(
        ModelVersion,
        required=True,
        input=AddAliasInput(required=True),
        resolver=_changes_version(AddAlias),
        description="Set an alias on a linked version; it moves there from wherever it was.",
    )
    remove_alias = graphene.Field(
        ModelVersion,
        required=True,
        input=RemoveAliasInput(required=True),
        resolver=_changes_version(RemoveAlias),
        description="Take an alias off the version holding it; that version comes back.",
    )
    unlink_artifact_version = graphene.Field(
        RegisteredModel,
        required=True,
        input=UnlinkArtifactVersionInput(required=True),
        resolver=_changes_model(UnlinkVersion),
        description="Remove a version (and its aliases) from the registered model; its number is not reused.",
    )
    update_model_card = graphene.Field(
        RegisteredModel,
        required=True,
        input=UpdateModelCardInput(required=True),
        resolver=_changes_model(UpdateModelCard),
    )
    tag_registered_model = graphene.Field(
        RegisteredModel, required=True, input=TagRegisteredModelInput(required=True), resolver=_changes_model(TagModel)
    )
    untag_registered_model = graphene.Field(
        RegisteredModel,
        required=True,
        input=UntagRegisteredModelInput(required=True),
        resolver=_changes_model(UntagModel),
    )
    protect_alias = graphene.Field(
        RegisteredModel,
        required=True,
        input=ProtectAliasInput(required=True),
        resolver=_changes_model(ProtectAlias),
        description="Admins only: from now on only the model's admins may set or remove this alias.",
    )
    unprotect_alias = graphene.Field(
        RegisteredModel,
        required=True,
        input=UnprotectAliasInput(required=True),
        resolver=_changes_model(UnprotectAlias),
    )


def _bound(at: datetime | None, name: str) -> datetime | None:
    if at is None:
        return None
    try:
        return storable_time(at)
    except ValueError as exc:
        raise InvalidInput(f"{name}: {exc}") from None
