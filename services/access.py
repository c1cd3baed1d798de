"""Who may do what: a caller's role on a scope, from its API key and the grants it holds.

Reading needs only a live key (every role can read); roles govern writes. A key's role holds
everywhere, and a grant on a scope overrides it there: `model:<name>` before `registry`, `entity:<name>`
for runs and artifacts. An installation admin (an admin key) is admin everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelreg.errors import PermissionDenied
from modelreg.events.envelope import Actor
from modelreg.events.identity import Role

RANK: dict[str, int] = {"viewer": 1, "member": 2, "admin": 3}


def model_scopes(registered_model: str) -> tuple[str, ...]:
    """Most specific first."""
    return (f"model:{registered_model}", "registry")


def entity_scopes(entity: str) -> tuple[str, ...]:
    return (f"entity:{entity}",)


@dataclass(frozen=True)
class Caller:
    actor: Actor
    role: Role  # the role of the key the caller presented
    grants: Mapping[str, Role] = field(default_factory=dict)
    key_id: str | None = None  # the key presented (None: the server acting on its own behalf)

    def role_on(self, scopes: tuple[str, ...]) -> Role:
        if self.role == "admin":
            return "admin"
        for scope in scopes:
            if scope in self.grants:
                return self.grants[scope]
        return self.role

    def writes_somewhere(self) -> bool:
        """Member or more on some scope: enough to upload artifact files (logging the version is checked)."""
        return any(RANK[role] >= RANK["member"] for role in (self.role, *self.grants.values()))

    def may(self, needed: Role, scopes: tuple[str, ...]) -> bool:
        return RANK[self.role_on(scopes)] >= RANK[needed]

    def require(self, needed: Role, scopes: tuple[str, ...], doing: str) -> None:
        held = self.role_on(scopes)
        if RANK[held] < RANK[needed]:
            where = scopes[0] if scopes else "this installation"
            # A grant is on a scope; the installation's role is the key's, so only another key changes it.
            ask = (
                f"ask an admin of {where} to grant it (mutation grantRole)"
                if scopes
                else f"ask an installation admin for a key with the {needed} role (mutation issueApiKey)"
            )
            raise PermissionDenied(f"{self.actor} is a {held} of {where}; {doing} needs {needed}: {ask}")


def service_caller(service: str) -> Caller:
    """The server itself, for what it does on its own behalf (the first admin key)."""
    return Caller(Actor(kind="service", id=service), "admin")
