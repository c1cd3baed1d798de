"""Events of identity: API keys that identify users and service accounts, and the roles they hold.
Stream: `principal:<kind>:<id>`.

Only a key's SHA-256 is ever on the log; the key itself is shown once, to whoever asked for it.

A key's role holds everywhere; a role granted on a scope overrides it there (up or down, never below
viewer). Scopes: `registry` (every registered model), `model:<name>` (one registered model, the most
specific), `entity:<name>` (the runs and artifacts of an entity's projects).

An entity or a registered model may be made private (stream `visibility:<scope>`): then only those with a
grant on it (or an admin key) read it, and a key's own role no longer holds there (docs/access.md).
"""

from __future__ import annotations

from datetime import datetime
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

# What a key can be limited to: a scope, or a Launch queue (an agent's key, limited to the queues it serves).
KeyScope = Annotated[
    str,
    StringConstraints(
        pattern=r"^(registry|(model|entity|queue):[A-Za-z0-9][A-Za-z0-9._-]*)$",
        max_length=140,
    ),
]

# The scopes a key is limited to (empty: not limited).
KeyLimits = Annotated[tuple[KeyScope, ...], Field(max_length=100)]

# What can be private: an entity (a team) or one registered model; never the whole registry.
PrivateScope = Annotated[str, StringConstraints(pattern=r"^(model|entity):[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=140)]

# Who may read an event that names no entity or registered model of its own (an automation's firing, a Launch
# job's report): who reads this scope (projections/readable.py, scope_of). None: everyone.
ReadScope = Annotated[
    PrivateScope | None,
    Field(description="who may read this event: who reads this entity or registered model; null: everyone"),
]


def visibility_stream(scope: str) -> str:
    return f"visibility:{scope}"


def principal_stream(principal: Actor) -> str:
    return f"principal:{principal.kind}:{principal.id}"


class ApiKeyIssued(Event):
    type = "identity.api_key_issued"
    version = 2
    private_fields = frozenset({"key_sha256"})

    key_id: KeyId
    principal: Actor
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Role
    label: KeyLabel | None = None
    # A key limited to these scopes (a CI key that may only link into one model): its role and its principal's
    # grants hold there and nowhere else. Empty: not limited (every key issued before limits existed).
    scopes: KeyLimits = ()
    # Refused from then on, as if revoked (a contractor's key, a CI key rotated every quarter). None: never.
    expires_at: datetime | None = None


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
    version = 2

    principal: Actor
    scope: Scope
    role: Role | None = Field(description="the role it held there; null in records written before v2, which lack it")


class ScopeMadePrivate(Event):
    """From now on only principals with a grant on `scope` (or an admin key) read what is in it."""

    type = "identity.scope_made_private"
    version = 1

    scope: PrivateScope


class ScopeMadePublic(Event):
    """`scope` is readable by every key again (the default)."""

    type = "identity.scope_made_public"
    version = 1

    scope: PrivateScope
