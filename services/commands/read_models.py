"""What the write side reads: one Protocol per read model, with exactly the reads that commands and their
handlers make, so that handlers run against PostgreSQL in the server and against dicts in unit tests
(tests/support/memory_read_models.py).

Each Protocol is answered in PostgreSQL by the query class of its read model (projections/*_queries.py);
`ReadModels.in_postgres` wires those. A read a handler needs is added here and to the fakes, never taken
from a pool behind the Protocol's back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import asyncpg

from modelreg.events.envelope import Actor
from modelreg.events.identity import Role
from modelreg.events.log import LogPosition
from modelreg.projections.audit_queries import AuditQueries, CausedEvent
from modelreg.projections.identity_queries import IdentityQueries
from modelreg.projections.launch_queries import LaunchQueries
from modelreg.projections.parked_queries import ParkedStreamQueries
from modelreg.projections.readable import Readable
from modelreg.projections.registry_queries import RegistryQueries


class RegistryReads(Protocol):
    """Runs, artifact versions, registered models, their links and aliases (projections/registry.py)."""

    async def run(self, entity: str, project: str, run_id: str) -> dict[str, Any] | None: ...

    async def runs_in_project(self, entity: str, project: str) -> int: ...

    async def artifact_version(self, version_id: UUID) -> dict[str, Any] | None: ...

    async def artifact_version_by_ref(
        self, entity: str, project: str, name: str, selector: str
    ) -> dict[str, Any] | None:
        """`selector` is `v<N>`, `latest`, or an alias logged with the version."""
        ...

    async def registered_model(self, name: str) -> dict[str, Any] | None: ...

    async def registered_model_names(self) -> list[str]:
        """Every registered model's name: what a mistyped one is compared with."""
        ...

    async def entities(self) -> list[str]:
        """Every entity with a run or an artifact, by name."""
        ...

    async def model_version_of(self, name: str, artifact_version_id: UUID) -> dict[str, Any] | None: ...

    async def models_linking(self, artifact_version_id: UUID) -> list[str]:
        """The registered models this version is linked into (their readers read it: projections/readable.py)."""
        ...

    async def links_of(self, artifact_version_id: UUID) -> list[dict[str, Any]]:
        """Every registered model that links this artifact version (`registered_model`, `version_index`)."""
        ...

    async def alias_target(self, name: str, alias: str) -> UUID | None: ...

    async def aliases_of(self, name: str, artifact_version_id: UUID) -> list[str]: ...

    async def protected_aliases(self, name: str) -> set[str]: ...

    async def files_hidden(self, digests: Collection[str], readable: Readable) -> set[str]:
        """Which of these stored files only versions hidden from `readable` list (projections/readable.py)."""
        ...


class AuditReads(Protocol):
    async def caused_by(self, command_id: UUID, actor: Actor, subject: str | None = None) -> list[CausedEvent]:
        """The events of this actor's commands with this client id (they carry it as causation id), oldest first,
        with the value of the payload field `subject` when one is named. Another's id is no concern of its: ids
        are shown in the audit log, and one sent first by someone else made a command a no-op answered as a
        success."""
        ...


class IdentityReads(Protocol):
    async def api_key(self, key_id: str) -> dict[str, Any] | None: ...

    async def live_admin_keys(self) -> int: ...

    async def lasting_admin_keys(self) -> int: ...

    async def roles_by_scope(self, principal_kind: str, principal_id: str) -> dict[str, Role]: ...

    async def keys_of_principal(self, principal_kind: str, principal_id: str) -> list[dict[str, Any]]:
        """Its keys, live and revoked (`key_id`, `role`, `scopes`, `revoked_at`), not its Launch job attempts'."""
        ...

    async def principals(self) -> list[str]:
        """Everyone who holds a key (live or revoked) or a grant, as `kind:id`."""
        ...

    async def grantees_of(self, scope: str) -> list[str]:
        """The principals granted a role on `scope`, as `kind:id`."""
        ...

    async def private_scopes(self) -> frozenset[str]:
        """The entities and registered models made private (`entity:<name>`, `model:<name>`)."""
        ...


class LaunchReads(Protocol):
    async def queue(self, name: str) -> dict[str, Any] | None: ...

    async def job(self, job_id: UUID) -> dict[str, Any] | None: ...

    async def automation(self, automation_id: UUID) -> dict[str, Any] | None: ...

    async def jobs_to_run(self, queue: str) -> int:
        """How many of the queue's jobs are queued, claimed or running."""
        ...

    async def automations_launching_into(self, queue: str) -> list[dict[str, Any]]:
        """The automations not deleted (switched on or off) whose action enqueues into the queue, without their
        actions (their ids and names are what a refusal names)."""
        ...

    async def automations_created_by(self, creator: str) -> list[dict[str, Any]]:
        """The automations not deleted that `creator` (`kind:id`) created, oldest first, without their actions."""
        ...

    async def firing(self, automation_id: UUID, event_id: UUID) -> dict[str, Any] | None:
        """What the automation's firing for this event came to (`status`, `job_id`) and its event's `variables`."""
        ...

    async def pattern_refused(self, pattern: str) -> str | None:
        """Why the trigger projection's database would refuse this regular expression; None when it runs it."""
        ...


class ParkedStreamReads(Protocol):
    async def parked(self, projection: str, stream: str) -> dict[str, Any] | None:
        """The stream as it is parked (with its `first_event_id` and `first_event_type`), None if it is not."""
        ...


class ProjectionsShowing(Protocol):
    """How far the projections have applied the log: what read-your-writes waits on (projections/progress.py)."""

    async def wait_for(self, projections: Iterable[str], positions: Iterable[LogPosition], timeout_s: float) -> None:
        """Return once each of `projections` has applied `positions`; ProjectionLagging after `timeout_s`."""
        ...

    async def parked_among(self, streams: Iterable[str]) -> list[tuple[str, str, str]]:
        """(projection, stream, error) for those of `streams` that are parked."""
        ...


@dataclass(frozen=True)
class ReadModels:
    registry: RegistryReads
    audit: AuditReads
    identity: IdentityReads
    launch: LaunchReads
    parked: ParkedStreamReads

    @classmethod
    def in_postgres(cls, pool: asyncpg.Pool) -> ReadModels:
        return cls(
            registry=RegistryQueries(pool),
            audit=AuditQueries(pool),
            identity=IdentityQueries(pool),
            launch=LaunchQueries(pool),
            parked=ParkedStreamQueries(pool),
        )
