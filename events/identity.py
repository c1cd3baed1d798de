"""Events of identity: API keys that identify users and service accounts, and the roles they hold.
Stream: `principal:<kind>:<id>`.

Only a key's SHA-256 is ever on the log; the key itself is shown once, to whoever asked for it.

A key's role holds everywhere; a role granted on a scope overrides it there (up or down, never below
viewer). Scopes: `registry` (every registered model), `model:<name>` (one registered model, the most
specific), `entity:<name>` (the runs and artifacts of an entity's projects).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from modelreg.events.envelope import Actor, Event

Role = Literal["admin", "member", "viewer"]
Scope = Annotated[
    str,
    StringConstraints(
        pattern=r"^(registry|model:[A-Za-z0-9][A-Za-z0-9._-]*|entity:[A-Za-z0-9][A-Za-z0-9._-]*)$", max_length=140
    ),
]


# Shared with the commands that issue keys and grant roles (services/commands/commands.py).
KeyId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{12}$")]  # the part after mr_ in the key
KeyLabel = Annotated[str, StringConstraints(max_length=200)]
PrincipalKind = Literal["user", "service"]  # who holds keys (an automation acts with its creator's rights)
PrincipalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$", max_length=200)]


def principal_stream(principal: Actor) -> str:
    return f"principal:{principal.kind}:{principal.id}"


class ApiKeyIssued(Event):
    type = "identity.api_key_issued"
    version = 1
    private_fields = frozenset({"key_sha256"})

    key_id: KeyId
    principal: Actor
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Role
    label: KeyLabel | None = None


class ApiKeyRevoked(Event):
    type = "identity.api_key_revoked"
    version = 1

    key_id: KeyId
    principal: Actor


class RoleGranted(Event):
    """The principal now holds `role` on `scope` (replacing what it held there)."""

    type = "identity.role_granted"
    version = 1

    principal: Actor
    scope: Scope
    role: Role


class RoleRevoked(Event):
    """The principal's grant on `scope` is gone: its key's role holds there again."""

    type = "identity.role_revoked"
    version = 1

    principal: Actor
    scope: Scope
