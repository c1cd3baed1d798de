"""Events of registered models: links to artifact versions and aliases. Stream: `registered_model:<name>`.

Links and aliases of one registered model share the stream, so link numbers (v0, v1, ...) and alias moves
are ordered relative to each other.
"""

from __future__ import annotations

from uuid import UUID

from modelreg.events.envelope import Event
from modelreg.events.names import AliasName, Description, RegisteredModelName, TagName


def registered_model_stream(name: str) -> str:
    return f"registered_model:{name}"


class VersionLinked(Event):
    type = "registry.version_linked"
    version = 1

    registered_model: RegisteredModelName
    artifact_version_id: UUID


class AliasAdded(Event):
    """Setting an alias on a version moves it there from wherever it was: aliases are unique per model."""

    type = "registry.alias_added"
    version = 1

    registered_model: RegisteredModelName
    artifact_version_id: UUID
    alias: AliasName


class AliasRemoved(Event):
    type = "registry.alias_removed"
    version = 1

    registered_model: RegisteredModelName
    artifact_version_id: UUID
    alias: AliasName


class VersionUnlinked(Event):
    """The version leaves the registered model (with its aliases); its number is never given out again."""

    type = "registry.version_unlinked"
    version = 1

    registered_model: RegisteredModelName
    artifact_version_id: UUID


class ModelCardChanged(Event):
    """The registered model's card: what it does (markdown), what it takes and what it gives back."""

    type = "registry.model_card_changed"
    version = 1

    registered_model: RegisteredModelName
    description: Description
    inputs: Description | None = None
    outputs: Description | None = None


class ModelTagged(Event):
    type = "registry.model_tagged"
    version = 1

    registered_model: RegisteredModelName
    tag: TagName


class ModelUntagged(Event):
    type = "registry.model_untagged"
    version = 1

    registered_model: RegisteredModelName
    tag: TagName


class AliasProtected(Event):
    """From now on only admins of the registered model may set or remove this alias (e.g. `production`)."""

    type = "registry.alias_protected"
    version = 1

    registered_model: RegisteredModelName
    alias: AliasName


class AliasUnprotected(Event):
    type = "registry.alias_unprotected"
    version = 1

    registered_model: RegisteredModelName
    alias: AliasName
