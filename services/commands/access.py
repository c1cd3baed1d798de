"""Who may do what: a caller's role on a scope, from its API key and the grants it holds.

Reading needs only a live key (every role can read), except in private scopes; roles govern writes. A key's
role holds everywhere, and a grant on a scope overrides it there: `model:<name>` before `registry`,
`entity:<name>` for runs, artifacts, Launch jobs and automations. An installation admin (an admin key) is
admin everywhere. A command naming only an id (a job, an automation) is checked on the scope the read models
give that thing.

A private entity or model (projections/readable.py) is where a key's own role does not hold: only a grant
there (or an admin key) gives any role, viewer included. A key limited to scopes holds its role and its
principal's grants only there; elsewhere it reads what is public and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from uuid import UUID

from modelreg.errors import PermissionDenied, quoted
from modelreg.events.envelope import Actor
from modelreg.events.identity import Role
from modelreg.projections.readable import Readable

RANK: dict[str, int] = {"none": 0, "viewer": 1, "member": 2, "admin": 3}


def model_scopes(registered_model: str) -> tuple[str, ...]:
    """Most specific first."""
    return (f"model:{registered_model}", "registry")


def entity_scopes(entity: str) -> tuple[str, ...]:
    return (f"entity:{entity}",)


def queue_scope(queue: str) -> str:
    """Where a Launch job waits: no role is granted there, but a key may be limited to it (an agent's key)."""
    return f"queue:{queue}"


def automation_scopes(trigger: Mapping[str, Any], action: Mapping[str, Any]) -> tuple[str, ...]:
    """Where an automation acts: the entity it launches jobs in, else the entity or model it watches;
    () when it watches everything (or its entity is a template filled from each event)."""
    launches_in = action.get("entity") if action.get("kind") == "launch" else None
    if launches_in and "${" not in launches_in:
        return entity_scopes(launches_in)
    if trigger.get("entity"):
        return entity_scopes(trigger["entity"])
    if trigger.get("registered_model"):
        return model_scopes(trigger["registered_model"])
    return ()


@dataclass(frozen=True)
class Caller:
    actor: Actor
    role: Role  # the role of the key the caller presented
    grants: Mapping[str, Role] = field(default_factory=dict)
    key_id: str | None = None  # the key presented (None: the server acting on its own behalf)
    private: frozenset[str] = frozenset()  # the installation's private scopes, when the key was looked up
    limits: tuple[str, ...] = ()  # the scopes the key is limited to; () not limited
    job_id: UUID | None = None  # the Launch job whose attempt the key was issued for (events/launch.py, JobClaimed)
    job_attempt: int | None = None  # and which attempt of it
    # Its job was cancelled and its key is revoked soon (projections/identity.py, CANCELLED_JOB_KEY_GRACE_S): it may
    # only flush and finish the job's own runs (services/commands/cancelled_jobs.py).
    job_cancelled: bool = False

    def role_on(self, scopes: tuple[str, ...]) -> str:
        """The role held where a command acts; "none" in a private scope the caller holds nothing in."""
        held = self._role_on(scopes)
        # A job attempt's key holds its agent principal's grants, which may make it an admin of the job's entity:
        # a job logs runs and links versions; it grants no roles and moves no protected alias.
        return "member" if self.job_id is not None and held == "admin" else held

    def _role_on(self, scopes: tuple[str, ...]) -> str:
        if self.limits and not any(self.within_limits(scope) for scope in scopes):
            return "none" if any(scope in self.private for scope in scopes) else "viewer"
        if self.role == "admin":
            return "admin"
        for scope in scopes:
            if scope in self.grants:
                return self.grants[scope]
        if any(scope in self.private for scope in scopes):
            return "none"
        return self.role

    def within_limits(self, scope: str) -> bool:
        return scope in self.limits or (scope.startswith("model:") and "registry" in self.limits)

    @property
    def holder(self) -> str:
        """Who is recorded as holding a file this caller sent (services/infra/blob_holders.py): its key, so that
        a key limited to one team does not inherit what its principal's other keys sent."""
        return f"key:{self.key_id}" if self.key_id else str(self.actor)

    def readable(self) -> Readable:
        """What this caller may read: the visibility set every read path filters by."""
        return self._readable

    @cached_property
    def _readable(self) -> Readable:
        # Made once per caller: a request asks several times, and each time went through every private scope.
        return Readable.of(
            admin=self.role == "admin",
            grants=self.grants,
            private=self.private,
            limits=self.limits,
            principal=self.actor,
            administered=[scope for scope in {*self.grants, *self.limits} if self._administers(scope)],
            # Models whose own grant overrides an admin role on the registry.
            not_administered=[s for s in self.grants if s.startswith("model:") and not self._administers(s)],
        )

    def _administers(self, scope: str) -> bool:
        """Admin of a scope a grant or a limit names (an entity, a model, the registry: every model)."""
        if scope.startswith("model:"):
            return self.may("admin", model_scopes(scope.removeprefix("model:")))
        return (scope.startswith("entity:") or scope == "registry") and self.may("admin", (scope,))

    def writes_somewhere(self) -> bool:
        """Member or more on some scope: enough to upload artifact files (logging the version is checked)."""
        if self.limits:
            held = [self.role_on((scope,)) for scope in self.limits]
            return any(RANK[role] >= RANK["member"] for role in held)
        return any(RANK[role] >= RANK["member"] for role in (self.role, *self.grants.values()))

    def may(self, needed: Role, scopes: tuple[str, ...]) -> bool:
        return RANK[self.role_on(scopes)] >= RANK[needed]

    def require(self, needed: Role, scopes: tuple[str, ...], doing: str) -> None:
        held = self.role_on(scopes)
        if RANK[held] < RANK[needed]:
            where = scopes[0] if scopes else "this installation"
            if self.limits and not any(self.within_limits(scope) for scope in scopes):
                raise PermissionDenied(
                    f"the key in use is limited to {', '.join(self.limits)}; {doing} acts on {where}: "
                    "use a key limited to it, or one without limits"
                )
            if held == "none":
                raise PermissionDenied(
                    f"{where} is private and {self.actor} holds no role there; {doing} needs {needed}: "
                    f"ask an admin of {where} to grant it (mutation grantRole)"
                )
            # A grant is on a scope; the installation's role is the key's, so only another key changes it.
            ask = (
                f"ask an admin of {where} to grant it (mutation grantRole)"
                if scopes
                else f"ask an installation admin for a key with the {needed} role (mutation issueApiKey)"
            )
            raise PermissionDenied(f"{self.actor} is a {held} of {where}; {doing} needs {needed}: {ask}")


def job_key_role(agent: Caller) -> Role:
    """The role of a job attempt's key: its agent's, but never admin (a job logs runs and links versions; it
    does not manage keys, grants or queues)."""
    return "viewer" if agent.role == "viewer" else "member"


def job_key_scopes(agent: Caller, entity: str) -> tuple[str, ...]:
    """Where a job attempt's key holds its role: the job's entity, where its runs and artifacts go, and the
    registry, where it may link what it made, if its agent's key may write there too. Everywhere else the job
    reads what is public and writes nothing, whatever its agent may do."""
    wanted = (*entity_scopes(entity), "registry")
    if not agent.limits:
        return wanted
    within = tuple(scope for scope in wanted if agent.within_limits(scope))
    if not within:  # no limits would be no limits at all: a claim checks the entity first, so this is a bug
        raise PermissionDenied(f"the key in use is limited to {', '.join(agent.limits)}, not to entity:{entity}")
    return within


def require_own_agent(caller: Caller, agent_id: str) -> None:
    """An agent speaks for the key it runs with: its id is the key's principal, or starts with it and a colon
    (`service:gpu-pool:host-1`). So no key claims, reports or beats for another principal's agent, admins
    included (an admin cancels or requeues a job instead); nor does a job attempt's key, though its principal is
    its agent's: the job's code would otherwise act as an agent."""
    if caller.job_id is not None:
        raise PermissionDenied(
            f"this key was issued for an attempt of job {caller.job_id} and does not act as agent {quoted(agent_id)}: "
            "an agent runs with its own key"
        )
    if caller.key_id is None and caller.actor.kind == "service":
        return  # the server itself (the Launch supervisor failing a vanished agent's job), not a key
    owner = str(caller.actor)
    if agent_id != owner and not agent_id.startswith(f"{owner}:"):
        raise PermissionDenied(
            f"{caller.actor} may not act as agent {quoted(agent_id)}: an agent's id is the principal of its key "
            f"followed by a name ({owner}:<name>); run the agent with its own key (modelreg agent names itself so)"
        )


def service_caller(service: str) -> Caller:
    """The server itself, for what it does on its own behalf (the first admin key)."""
    return Caller(Actor(kind="service", id=service), "admin")
