"""Events of registered models: links to artifact versions and aliases. Stream: `registered_model:<name>`.

Links and aliases of one registered model share the stream, so link numbers (v0, v1, ...) and alias moves
are ordered relative to each other.
"""

from __future__ import annotations

from uuid import UUID

from modelreg.events.envelope import Event
from modelreg.events.names import AliasName, RegisteredModelName


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
