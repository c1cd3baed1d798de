"""Events of identity: API keys that identify users and service accounts. Stream: `principal:<kind>:<id>`.

Only a key's SHA-256 is ever on the log; the key itself is shown once, to whoever asked for it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelreg.events.envelope import Actor, Event

Role = Literal["admin", "member", "viewer"]


def principal_stream(principal: Actor) -> str:
    return f"principal:{principal.kind}:{principal.id}"


class ApiKeyIssued(Event):
    type = "identity.api_key_issued"
    version = 1

    key_id: str = Field(pattern=r"^[a-z0-9]{12}$")
    principal: Actor
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Role
    label: str | None = Field(default=None, max_length=200)


class ApiKeyRevoked(Event):
    type = "identity.api_key_revoked"
    version = 1

    key_id: str = Field(pattern=r"^[a-z0-9]{12}$")
    principal: Actor
