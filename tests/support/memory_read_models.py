"""The write side's read models in dicts, kept up to date from the events the commands decide.

Unit tests run the real command path (services/commands/application.py) on the in-memory log; instead of
the projector and PostgreSQL, `CaughtUpProjections` applies each appended event to these dicts before the
command answers (read-your-writes, at once). They answer the Protocols of services/commands/read_models.py
with rows shaped like the tables' (only the columns the handlers read), and follow the projections' rules
where the handlers depend on them: link numbers, an alias moving between versions, a job's states.
A parked stream is not an event's doing (a projection failed to apply one): a test parks it with `park`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from modelreg.events.artifacts import (
    ArtifactVersionDeleted,
    ArtifactVersionEdited,
    ArtifactVersionLogged,
    ArtifactVersionTagged,
    ArtifactVersionUntagged,
)
from modelreg.events.automations import (
    AutomationChanged,
    AutomationCreated,
    AutomationDeleted,
    AutomationDisabled,
    AutomationEnabled,
    AutomationFired,
    FiringRetried,
    WebhookSecretRotated,
)
from modelreg.events.codec import decode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import (
    ApiKeyIssued,
    ApiKeyRevoked,
    RoleGranted,
    RoleRevoked,
    ScopeMadePrivate,
    ScopeMadePublic,
)
from modelreg.events.launch import (
    JobCancelled,
    JobClaimed,
    JobEnqueued,
    JobFinished,
    JobRequeued,
    JobStarted,
    QueueCreated,
    QueueDeleted,
    QueueEntitiesSet,
    ends_attempt,
)
from modelreg.events.log import LogPosition
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.registry import (
    AliasAdded,
    AliasProtected,
    AliasRemoved,
    AliasUnprotected,
    ModelCardChanged,
    ModelTagged,
    ModelUntagged,
    VersionLinked,
    VersionUnlinked,
)
from modelreg.events.runs import (
    MetricsLogged,
    RunConfigUpdated,
    RunDescribed,
    RunFinished,
    RunHeartbeat,
    RunResumed,
    RunStarted,
    RunSummaryUpdated,
)
from modelreg.projections import identity
from modelreg.projections.audit import NOT_ACTIONS
from modelreg.projections.audit_queries import CausedEvent
from modelreg.projections.progress import ProjectionLagging
from modelreg.projections.readable import Readable, scope_of
from modelreg.services.commands.read_models import ReadModels

RunKey = tuple[str, str, str]


@dataclass
class MemoryRegistry:
    runs: dict[RunKey, dict[str, Any]] = field(default_factory=dict)
    versions: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[tuple[str, UUID], dict[str, Any]] = field(default_factory=dict)
    aliases: dict[tuple[str, str], UUID] = field(default_factory=dict)  # (model, alias) -> version
    protected: dict[str, set[str]] = field(default_factory=dict)

    async def run(self, entity: str, project: str, run_id: str) -> dict[str, Any] | None:
        return self.runs.get((entity, project, run_id))

    async def runs_in_project(self, entity: str, project: str) -> int:
        return sum(1 for run in self.runs if run[:2] == (entity, project))

    async def artifact_version(self, version_id: UUID) -> dict[str, Any] | None:
        return self.versions.get(version_id)

    async def artifact_version_by_ref(
        self, entity: str, project: str, name: str, selector: str
    ) -> dict[str, Any] | None:
        collection = sorted(
            (
                v
                for v in self.versions.values()
                if (v["entity"], v["project"], v["name"]) == (entity, project, name) and not v.get("deleted")
            ),
            key=lambda v: v["version_index"],
            reverse=True,
        )
        if selector == "latest":
            return collection[0] if collection else None
        if selector[:1] == "v" and selector[1:].isdigit():
            return next((v for v in collection if v["version_index"] == int(selector[1:])), None)
        return next((v for v in collection if selector in v["aliases"]), None)

    async def registered_model(self, name: str) -> dict[str, Any] | None:
        return self.models.get(name)

    async def registered_model_names(self) -> list[str]:
        return sorted(self.models)

    async def entities(self) -> list[str]:
        return sorted({run[0] for run in self.runs} | {v["entity"] for v in self.versions.values()})

    async def model_version_of(self, name: str, artifact_version_id: UUID) -> dict[str, Any] | None:
        return self.links.get((name, artifact_version_id))

    async def models_linking(self, artifact_version_id: UUID) -> list[str]:
        return sorted(model for model, version in self.links if version == artifact_version_id)

    async def links_of(self, artifact_version_id: UUID) -> list[dict[str, Any]]:
        return sorted(
            (link for (_, target), link in self.links.items() if target == artifact_version_id),
            key=lambda link: link["registered_model"],
        )

    async def alias_target(self, name: str, alias: str) -> UUID | None:
        return self.aliases.get((name, alias))

    async def aliases_of(self, name: str, artifact_version_id: UUID) -> list[str]:
        return sorted(a for (m, a), target in self.aliases.items() if m == name and target == artifact_version_id)

    async def protected_aliases(self, name: str) -> set[str]:
        return set(self.protected.get(name, set()))

    async def files_hidden(self, digests: Collection[str], readable: Readable) -> set[str]:
        def read(version: dict[str, Any]) -> bool:  # a deleted version is read by no one
            linked = (model for model, target in self.links if target == version["id"])
            visible = readable.entity(version["entity"]) or any(readable.model(model) for model in linked)
            return visible and not version.get("deleted")

        hidden = set()
        for digest in digests:
            holding = [
                v
                for v in self.versions.values()
                if any(f["digest"] == digest and f.get("ref") is None for f in v["manifest"])
            ]
            if holding and not any(read(v) for v in holding):
                hidden.add(digest)
        return hidden

    def apply(self, envelope: Envelope) -> None:
        e, actor = envelope.payload, str(envelope.actor)
        match e:
            case RunStarted():
                key = (e.entity, e.project, e.run_id)
                self.runs.setdefault(
                    key,
                    {
                        **e.model_dump(),
                        "state": "running",
                        "started_at": envelope.occurred_at,
                        "started_by": actor,
                        "started_offline_at": envelope.recorded_offline_at,
                    },
                )
            case RunFinished():
                self.runs[e.entity, e.project, e.run_id].update(state=e.state, finished_at=envelope.occurred_at)
            case RunResumed():
                run = self.runs[e.entity, e.project, e.run_id]
                run.update(state="running", finished_at=None, last_heartbeat_at=None)
            case RunHeartbeat():
                self.runs[e.entity, e.project, e.run_id].update(last_heartbeat_at=envelope.occurred_at)
            case MetricsLogged():
                run = self.runs.get((e.entity, e.project, e.run_id), {})
                if run.get("last_heartbeat_at") is not None and run["last_heartbeat_at"] < envelope.occurred_at:
                    run["last_heartbeat_at"] = envelope.occurred_at  # word from a run whose client beats
            case RunConfigUpdated() | RunSummaryUpdated():
                which = "config" if isinstance(e, RunConfigUpdated) else "summary"
                values = self.runs[e.entity, e.project, e.run_id].setdefault(which, {})
                values.update(e.changes)
                for key in e.removed:
                    values.pop(key, None)
            case RunDescribed():
                described = e.model_dump(include={"name", "notes", "tags", "group"}, exclude_none=True)
                self.runs[e.entity, e.project, e.run_id].update(described)
            case ArtifactVersionLogged():
                collection = (e.entity, e.project, e.name)
                index = sum(1 for v in self.versions.values() if (v["entity"], v["project"], v["name"]) == collection)
                for other in self.versions.values():  # an alias names one version of a collection
                    if (other["entity"], other["project"], other["name"]) == collection:
                        other["aliases"] = [a for a in other["aliases"] if a not in e.aliases]
                self.versions[e.artifact_version_id] = {
                    **e.model_dump(exclude={"artifact_version_id"}),
                    "id": e.artifact_version_id,
                    "version_index": index,
                    "aliases": list(e.aliases),
                    "tags": [],
                }
            case ArtifactVersionTagged():
                self.versions[e.artifact_version_id]["tags"] = sorted(
                    {*self.versions[e.artifact_version_id]["tags"], e.tag}
                )
            case ArtifactVersionUntagged():
                self.versions[e.artifact_version_id]["tags"].remove(e.tag)
            case ArtifactVersionEdited():
                version = self.versions[e.artifact_version_id]
                for other in self.versions.values():  # an alias names one version of a collection
                    if (other["entity"], other["project"], other["name"]) == (e.entity, e.project, e.name):
                        other["aliases"] = [a for a in other["aliases"] if a not in e.aliases_added]
                kept = [a for a in version["aliases"] if a not in e.aliases_removed]
                version["aliases"] = sorted({*kept, *e.aliases_added})
                version.update(e.model_dump(include={"description", "metadata"}, exclude_none=True))
            case ArtifactVersionDeleted():
                self.versions[e.artifact_version_id].update(deleted=True, deleted_at=envelope.occurred_at, aliases=[])
            case VersionLinked():
                if (e.registered_model, e.artifact_version_id) in self.links:
                    return  # linking twice burns no number
                model = self._model(e.registered_model, envelope)
                self.links[e.registered_model, e.artifact_version_id] = {
                    "registered_model": e.registered_model,
                    "artifact_version_id": e.artifact_version_id,
                    "version_index": model["next_version"],
                    "linked_by": actor,
                }
                model["next_version"] += 1
            case AliasAdded():
                self.aliases[e.registered_model, e.alias] = e.artifact_version_id  # moves it from where it was
            case AliasRemoved():
                if self.aliases.get((e.registered_model, e.alias)) == e.artifact_version_id:
                    del self.aliases[e.registered_model, e.alias]
            case VersionUnlinked():
                self.links.pop((e.registered_model, e.artifact_version_id), None)
                for held in [k for k, v in self.aliases.items() if k[0] == e.registered_model]:
                    if self.aliases[held] == e.artifact_version_id:
                        del self.aliases[held]
            case ModelCardChanged():
                self._model(e.registered_model, envelope).update(e.model_dump(exclude={"registered_model"}))
            case ModelTagged():
                model = self._model(e.registered_model, envelope)
                model["tags"] = sorted({*model["tags"], e.tag})
            case ModelUntagged():
                self._model(e.registered_model, envelope)["tags"].remove(e.tag)
            case AliasProtected():
                self.protected.setdefault(e.registered_model, set()).add(e.alias)
            case AliasUnprotected():
                self.protected.get(e.registered_model, set()).discard(e.alias)

    def _model(self, name: str, envelope: Envelope) -> dict[str, Any]:
        return self.models.setdefault(
            name, {"name": name, "next_version": 0, "tags": [], "created_by": str(envelope.actor)}
        )


@dataclass
class MemoryAudit:
    # Per (causation id, actor): the events it caused, in log order, with their payloads.
    causes: dict[tuple[UUID, Actor], list[Envelope]] = field(default_factory=dict)

    async def caused_by(self, command_id: UUID, actor: Actor, subject: str | None = None) -> list[CausedEvent]:
        events = sorted(self.causes.get((command_id, actor), ()), key=lambda e: e.id)
        return [CausedEvent(e.id, e.type, e.stream, _subject(e, subject)) for e in events]

    def apply(self, envelope: Envelope) -> None:
        if envelope.causation_id is not None and envelope.type not in NOT_ACTIONS:
            self.causes.setdefault((envelope.causation_id, envelope.actor), []).append(envelope)


def _subject(event: Envelope, field: str | None) -> str | None:
    """`payload ->> field`, as the audit log reads it."""
    value = event.payload.public_dump().get(field) if field is not None else None
    return None if value is None else str(value)


@dataclass
class MemoryIdentity:
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # principal -> scope -> role
    private: set[str] = field(default_factory=set)  # the entities and models made private

    async def api_key(self, key_id: str) -> dict[str, Any] | None:
        return self.keys.get(key_id)

    async def live_admin_keys(self) -> int:
        now = datetime.now(UTC)
        return sum(
            1
            for k in self.keys.values()
            if k["role"] == "admin"
            and k["revoked_at"] is None
            and (k.get("expires_at") is None or k["expires_at"] > now)
        )

    async def lasting_admin_keys(self) -> int:
        return sum(
            1
            for k in self.keys.values()
            if k["role"] == "admin" and k["revoked_at"] is None and k.get("expires_at") is None
        )

    async def roles_by_scope(self, principal_kind: str, principal_id: str) -> dict[str, str]:
        return dict(self.grants.get((principal_kind, principal_id), {}))

    async def private_scopes(self) -> frozenset[str]:
        return frozenset(self.private)

    async def keys_of_principal(self, principal_kind: str, principal_id: str) -> list[dict[str, Any]]:
        return [
            key
            for key in self.keys.values()
            if (key["principal_kind"], key["principal_id"]) == (principal_kind, principal_id) and not key.get("job_id")
        ]

    async def principals(self) -> list[str]:
        holding = {(k["principal_kind"], k["principal_id"]) for k in self.keys.values() if not k.get("job_id")}
        granted = {principal for principal, grants in self.grants.items() if grants}
        return sorted(f"{kind}:{ident}" for kind, ident in holding | granted)

    async def grantees_of(self, scope: str) -> list[str]:
        return sorted(f"{kind}:{ident}" for (kind, ident), grants in self.grants.items() if scope in grants)

    async def principal_of_key(self, key_sha256: str) -> dict[str, Any] | None:
        for key in self.keys.values():
            live = key["revoked_at"] is None or key["revoked_at"] > datetime.now(UTC)
            if key["key_sha256"] == key_sha256 and live:
                principal = (key["principal_kind"], key["principal_id"])
                return {**key, "grants": dict(self.grants.get(principal, {})), "private": list(self.private)}
        return None

    def apply(self, envelope: Envelope) -> None:
        e = envelope.payload
        match e:
            case ApiKeyIssued():
                self.keys[e.key_id] = {
                    "key_id": e.key_id,
                    "key_sha256": e.key_sha256,
                    "principal_kind": e.principal.kind,
                    "principal_id": e.principal.id,
                    "role": e.role,
                    "scopes": list(e.scopes),
                    "revoked_at": None,
                    "expires_at": e.expires_at,
                }
            case ApiKeyRevoked():
                for key in self.keys.values():
                    if (key["key_id"] == e.key_id or key.get("issued_with") == e.key_id) and key["revoked_at"] is None:
                        key["revoked_at"] = envelope.occurred_at
            case JobClaimed(key_id=str()):
                claiming = self.keys.get(e.claimed_with or "")
                self.keys[e.key_id] = {
                    "key_id": e.key_id,
                    "key_sha256": e.key_sha256,
                    "principal_kind": envelope.actor.kind,
                    "principal_id": envelope.actor.id,
                    "role": e.key_role,
                    "scopes": list(e.key_scopes),
                    "revoked_at": claiming["revoked_at"] if claiming else None,
                    "job_id": e.job_id,
                    "job_attempt": e.attempt,
                    "issued_with": e.claimed_with,
                }
            case JobFinished() | JobRequeued() | JobCancelled():
                revoked_at = envelope.occurred_at
                if isinstance(e, JobCancelled):  # its process flushes its runs meanwhile
                    revoked_at += timedelta(seconds=identity.CANCELLED_JOB_KEY_GRACE_S)
                for key in self.keys.values():
                    ends = key.get("job_id") is not None and ends_attempt(e, key["job_id"], key["job_attempt"])
                    if ends and (key["revoked_at"] is None or key["revoked_at"] > revoked_at):
                        key["revoked_at"] = revoked_at
            case RoleGranted():
                self.grants.setdefault((e.principal.kind, e.principal.id), {})[e.scope] = e.role
            case RoleRevoked():
                self.grants.get((e.principal.kind, e.principal.id), {}).pop(e.scope, None)
            case ScopeMadePrivate():
                self.private.add(e.scope)
            case ScopeMadePublic():
                self.private.discard(e.scope)


@dataclass
class MemoryLaunch:
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    automations: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    # By (automation, event). The trigger projection records one when an event matches; here the runner's record of
    # its outcome makes it, with its event's facts left empty (a test sets them).
    firings: dict[tuple[UUID, UUID], dict[str, Any]] = field(default_factory=dict)

    async def queue(self, name: str) -> dict[str, Any] | None:
        return self.queues.get(name)

    async def job(self, job_id: UUID) -> dict[str, Any] | None:
        return self.jobs.get(job_id)

    async def automation(self, automation_id: UUID) -> dict[str, Any] | None:
        return self.automations.get(automation_id)

    async def jobs_to_run(self, queue: str) -> int:
        return sum(j["queue"] == queue and j["state"] in ("queued", "claimed", "running") for j in self.jobs.values())

    async def automations_launching_into(self, queue: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.automations.values()
            if a.get("deleted_at") is None and a["action"]["kind"] == "launch" and a["action"]["queue"] == queue
        ]

    async def automations_created_by(self, creator: str) -> list[dict[str, Any]]:
        return [a for a in self.automations.values() if a["created_by"] == creator and a.get("deleted_at") is None]

    async def firing(self, automation_id: UUID, event_id: UUID) -> dict[str, Any] | None:
        return self.firings.get((automation_id, event_id))

    async def pattern_refused(self, pattern: str) -> str | None:
        """Python's engine stands in for PostgreSQL's; `(?P<` is refused as PostgreSQL refuses it."""
        try:
            re.compile(pattern)
        except re.error as exc:
            return str(exc)
        return "invalid regular expression: named groups are Python's" if "(?P<" in pattern else None

    def apply(self, envelope: Envelope) -> None:
        e = envelope.payload
        job_id = getattr(e, "job_id", None)
        job = self.jobs.get(job_id) if job_id else None
        # The same guards as the projection's UPDATEs: a report about a void attempt changes nothing.
        match e:
            case QueueCreated():
                self.queues[e.queue] = {"name": e.queue, "resource": e.resource, "entities": list(e.entities)}
            case QueueEntitiesSet():
                self.queues[e.queue]["entities"] = list(e.entities)
            case QueueDeleted():
                del self.queues[e.queue]
            case JobEnqueued():
                self.jobs[e.job_id] = {
                    **e.model_dump(mode="json"),
                    "job_id": e.job_id,
                    "state": "queued",
                    "attempt": 0,
                    "agent_id": None,
                }
            case JobClaimed() if job and job["state"] == "queued" and job["attempt"] == e.attempt - 1:
                job.update(state="claimed", attempt=e.attempt, agent_id=e.agent_id)
            case JobStarted() if job and job["attempt"] == e.attempt and job["state"] == "claimed":
                job.update(state="running")
            case JobFinished() if job and job["attempt"] == e.attempt and job["state"] in ("claimed", "running"):
                job.update(state=e.state)
            case JobRequeued() if job and job["attempt"] == e.attempt and job["state"] in ("claimed", "running"):
                job.update(state="queued", agent_id=None)
            case JobCancelled() if job and job["state"] in ("queued", "claimed", "running"):
                job.update(state="cancelled")
            case AutomationCreated():
                self.automations[e.automation_id] = {
                    "automation_id": e.automation_id,
                    "name": e.name,
                    "trigger": e.trigger.model_dump(mode="json"),
                    "action": e.action.model_dump(mode="json"),
                    "enabled": e.enabled,
                    "created_by": str(envelope.actor),
                    "secret_generation": e.secret_generation,
                }
            case AutomationEnabled():
                self.automations[e.automation_id]["enabled"] = True
            case AutomationDisabled():
                self.automations[e.automation_id]["enabled"] = False
            case AutomationChanged():
                self.automations[e.automation_id].update(
                    trigger=e.trigger.model_dump(mode="json"), action=e.action.model_dump(mode="json")
                )
            case AutomationDeleted():
                self.automations[e.automation_id].update(enabled=False, deleted_at=envelope.occurred_at)
            case WebhookSecretRotated():
                self.automations[e.automation_id]["secret_generation"] = e.secret_generation
            case AutomationFired():
                firing = self.firings.setdefault((e.automation_id, e.event_id), {"variables": {}, "retries": 0})
                firing.update(status=e.outcome, job_id=e.job_id)
            case FiringRetried():
                firing = self.firings[e.automation_id, e.event_id]
                if firing["status"] in ("failed", "skipped"):
                    firing.update(status="pending", retries=firing["retries"] + 1)


@dataclass
class MemoryParkedStreams:
    streams: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    async def parked(self, projection: str, stream: str) -> dict[str, Any] | None:
        return self.streams.get((projection, stream))

    def park(self, projection: str, stream: str, at: Envelope, error: str = "boom") -> None:
        """`projection` failed to apply `at` (the first event of `stream` it holds back)."""
        self.streams[projection, stream] = {
            "projection": projection,
            "stream": stream,
            "error": error,
            "first_event_id": at.id,
            "first_event_type": at.type,
            "first_event_scope": scope_of(at.payload.public_dump()),
        }


@dataclass
class MemoryReadModels:
    registry: MemoryRegistry = field(default_factory=MemoryRegistry)
    audit: MemoryAudit = field(default_factory=MemoryAudit)
    identity: MemoryIdentity = field(default_factory=MemoryIdentity)
    launch: MemoryLaunch = field(default_factory=MemoryLaunch)
    parked: MemoryParkedStreams = field(default_factory=MemoryParkedStreams)

    def protocols(self) -> ReadModels:
        return ReadModels(self.registry, self.audit, self.identity, self.launch, self.parked)

    def apply(self, envelope: Envelope) -> None:
        for model in (self.registry, self.audit, self.identity, self.launch):
            model.apply(envelope)


class CaughtUpProjections:
    """The projections as the command path sees them: every appended event applied when it waits (or, when
    `lagging`, never: ProjectionLagging), and the streams `read_models.parked` holds reported as parked."""

    def __init__(self, log: InMemoryEventLog, read_models: MemoryReadModels) -> None:
        self.log = log
        self.read_models = read_models
        self.lagging = False
        self._applied: set[LogPosition] = set()

    async def wait_for(self, projections: Iterable[str], positions: Iterable[LogPosition], timeout_s: float) -> None:
        if self.lagging:
            raise ProjectionLagging(projections, positions, timeout_s)
        self.catch_up()

    def catch_up(self) -> None:
        for record in self.log.events():
            if record.position not in self._applied:
                self._applied.add(record.position)
                self.read_models.apply(decode(record.value))

    async def parked_among(self, streams: Iterable[str]) -> list[tuple[str, str, str]]:
        wanted = set(streams)
        return [(p, s, row["error"]) for (p, s), row in self.read_models.parked.streams.items() if s in wanted]


@dataclass
class MemoryBlobs:
    """The blob store as a manifest check sees it: digest -> size."""

    stored: dict[str, int] = field(default_factory=dict)
    holders: dict[str, set[str]] = field(default_factory=dict)  # digest -> who sent its bytes

    async def sizes(self, digests: Collection[str]) -> dict[str, int]:
        return {d: self.stored[d] for d in digests if d in self.stored}

    async def held_by(self, digests: Collection[str], holder: str) -> set[str]:
        return {d for d in digests if holder in self.holders.get(d, set())}
